/*
 * The encoder against QEMU 10.0.2's own files: for every mapped-ram vector
 * in shared/interop/qemu-10.0.2/vectors.json, write the same machine name
 * and RAM block list at the same offset and require QEMU's positions: the
 * START section, every block's bitmap_offset and pages_offset, and the
 * bytes right after the last block (EOS, footer, the first PART).
 * Skipped (77) when the vectors are not there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/stream_defs.h"
#include "format/stream_write.h"

#define MAXB 32

static int fd_pwrite(void *opaque, const void *buf, size_t len, uint64_t off,
                     struct mr_error *err)
{
    int fd = *(int *)opaque;

    if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
        return mr_error_set(err, -EIO, "short write");
    return 0;
}

static int check_vector(json_t *vec)
{
    json_t *p = json_object_get(vec, "parse");
    json_t *blocks = json_object_get(p, "ramblocks");
    const char *name = json_string_value(json_object_get(vec, "name"));
    uint64_t off = (uint64_t)json_integer_value(json_object_get(p, "offset"));
    uint64_t end = (uint64_t)json_integer_value(json_object_get(p,
                                                "after_last_block_pos"));
    const char *want_hex = json_string_value(json_object_get(p,
                                             "after_last_block_bytes"));
    struct mr_sw_ram_block b[MAXB];
    struct mr_error err = MR_ERROR_INIT;
    struct mr_stream_writer w;
    const char *caps[] = { "mapped-ram" };
    char path[] = "/tmp/mr-swq-XXXXXX";
    int fd = mkstemp(path);
    size_t n = json_array_size(blocks), i;
    uint8_t got[16];
    int bad = 0;

    unlink(path);
    if (n > MAXB || fd < 0)
        return 1;
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(blocks, i);
        memset(&b[i], 0, sizeof(b[i]));
        b[i].name = json_string_value(json_object_get(e, "idstr"));
        b[i].used_length = (uint64_t)json_integer_value(
            json_object_get(e, "used_length"));
        b[i].page_size = (uint64_t)json_integer_value(
            json_object_get(e, "page_size"));
    }
    struct mr_stream_sink sink = { fd_pwrite, &fd };
    mr_sw_init(&w, &sink, off, &err);
    mr_sw_header(&w);
    mr_sw_configuration(&w, json_string_value(json_object_get(p, "machine")),
                        caps, 1);
    if (mr_sw_pos(&w) - off != (uint64_t)json_integer_value(json_object_get(
            json_object_get(p, "ram_section"), "file_pos")) - off) {
        fprintf(stderr, "%s: START at 0x%llx\n", name,
                (unsigned long long)mr_sw_pos(&w));
        bad++;
    }
    mr_sw_section_header(&w, QEMU_VM_SECTION_START, 1, "ram", 0, 4);
    mr_sw_ram_setup(&w, b, n, true, false);
    if (mr_sw_pos(&w) != end) {
        fprintf(stderr, "%s: stream continues at 0x%llx, QEMU 0x%llx\n", name,
                (unsigned long long)mr_sw_pos(&w), (unsigned long long)end);
        bad++;
    }
    mr_sw_ram_eos(&w);
    mr_sw_section_footer(&w, 1);
    mr_sw_section_short(&w, QEMU_VM_SECTION_PART, 1);
    mr_sw_flush(&w);
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(blocks, i);
        uint64_t bo = (uint64_t)json_integer_value(json_object_get(e,
                                                   "bitmap_offset"));
        uint64_t po = (uint64_t)json_integer_value(json_object_get(e,
                                                   "pages_offset"));
        if (b[i].bitmap_offset != bo || b[i].pages_offset != po) {
            fprintf(stderr, "%s: block %s at bitmap 0x%llx pages 0x%llx, "
                    "QEMU 0x%llx 0x%llx\n", name, b[i].name,
                    (unsigned long long)b[i].bitmap_offset,
                    (unsigned long long)b[i].pages_offset,
                    (unsigned long long)bo, (unsigned long long)po);
            bad++;
        }
    }
    if (pread(fd, got, sizeof(got), (off_t)end) != (ssize_t)sizeof(got))
        bad++;
    for (i = 0; i < sizeof(got) && want_hex && strlen(want_hex) >= 32; i++) {
        unsigned v;
        sscanf(want_hex + 2 * i, "%2x", &v);
        if (got[i] != v) {
            fprintf(stderr, "%s: byte %zu after the last block: 0x%02x, "
                    "QEMU 0x%02x\n", name, i, got[i], v);
            bad++;
            break;
        }
    }
    mr_sw_destroy(&w);
    close(fd);
    printf("%s: %zu blocks, %s\n", name, n, bad ? "MISMATCH" : "identical");
    return bad;
}

int main(void)
{
    const char *shared = getenv("MAPRAM_SHARED_DIR");
    char path[1024];
    json_t *root, *vecs, *v;
    size_t i;
    int bad = 0, checked = 0;

    snprintf(path, sizeof(path), "%s/interop/qemu-10.0.2/vectors.json",
             shared ? shared : "/work/shared");
    root = json_load_file(path, 0, NULL);
    if (!root) {
        printf("SKIP: no %s\n", path);
        return 77;
    }
    vecs = json_object_get(root, "vectors");
    json_array_foreach(vecs, i, v) {
        json_t *p = json_object_get(v, "parse");
        if (strcmp(json_string_value(json_object_get(p, "format")),
                   "mapped-ram") != 0)
            continue;
        bad += check_vector(v);
        checked++;
    }
    json_decref(root);
    return bad || !checked ? 1 : 0;
}
