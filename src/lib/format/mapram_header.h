/* mapram's own save-file header: the codec's declarations are public
 * (include/mapram/format.h); this name stays for the library's files. */
#ifndef MAPRAM_FORMAT_MAPRAM_HEADER_H
#define MAPRAM_FORMAT_MAPRAM_HEADER_H

#include "mapram/format.h"

#endif
