#!/bin/sh
echo "hello from a multi-stage build"
