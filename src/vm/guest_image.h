/* The guest program, assembled from guest/guest.S at build time and
 * embedded by guest/bin2c.py. */
#ifndef MAPRAM_VM_GUEST_IMAGE_H
#define MAPRAM_VM_GUEST_IMAGE_H

#include <stddef.h>

extern const unsigned char guest_image[];
extern const size_t guest_image_size;

#endif
