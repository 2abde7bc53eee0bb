#!/bin/sh
# The "program" of the multi-stage example. The build stage stamps the
# version in and tests it; only the result reaches the final image.
case "${1:-}" in
--version) echo "hello @VERSION@" ;;
--help) cat /usr/share/doc/hello/README ;;
*) echo "hello from a multi-stage build (version @VERSION@)" ;;
esac
