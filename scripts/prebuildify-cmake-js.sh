#!/bin/sh
# prebuildify passes node-gyp's arguments (--target=… etc.); cmake-js would read --target as a CMake target, so
# drop them and rebuild with the package's own configuration.
exec npx cmake-js rebuild
