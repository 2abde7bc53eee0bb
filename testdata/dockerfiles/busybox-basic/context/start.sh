#!/bin/sh
exec httpd -f -p "${PORT:-8080}" -h "$SITE_ROOT"
