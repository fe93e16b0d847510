/* Optional compiled speed-ups of tifwriter_cli.tiff (lzw.py, pyramid.py).
 *
 * Everything here has a pure-Python/numpy twin that is used when this module
 * is not built, and tests compare the two.
 *
 * 1. lzw_encode: a TIFF LZW (Compression 5) encoder.
 *
 * Produces byte for byte what imagecodecs.lzw_encode produces (and what
 * tifwriter_cli.tiff.lzw.reference_encode models in Python): CLEAR, codes
 * MSB-first, each written after its table entry is added, widths 9..12 with
 * early change, a 12-bit CLEAR when the next code would be 4096, EOI, then
 * 1 to 8 zero bits up to the next byte boundary. lzw.py checks that once per
 * process against reference_encode and parses every segment it splices, so a
 * build that deviates is simply not used.
 *
 * Why it is faster than a general encoder: the string table is indexed
 * directly by (code, byte) instead of hashed. Tiles of label masks and
 * probability maps use few distinct byte values, so the bytes are first
 * mapped to a dense alphabet of K symbols and the table is 4096 x K entries;
 * the common step (the string grows by a byte already in the table) is one
 * load and one compare. Entries carry the number of the table generation
 * (table resets after 3838 codes), so a reset costs nothing. Inputs with
 * more than DIRECT_MAX distinct bytes use an open-addressing hash table,
 * stamped the same way. The GIL is released while encoding.
 *
 * 2. uniform_rows: which rows of a tile are one byte value (lzw.py splices
 *    those analytically).
 *
 * 3. mode2x2: the 2x2 majority rule of pyramid.py (``_mode``) on an
 *    unsigned-integer plane of any strides, one pass, no temporaries.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CLEAR 256
#define EOI 257
#define DIRECT_MAX 64
#define HASH_BITS 14
#define HASH_SIZE (1u << HASH_BITS)

typedef struct {
    uint8_t *out;
    uint64_t acc;
    int nbits;
} BitWriter;

static inline void put(BitWriter *w, uint32_t code, int width)
{
    w->acc = (w->acc << width) | code;
    w->nbits += width;
    while (w->nbits >= 8) {
        w->nbits -= 8;
        *w->out++ = (uint8_t)(w->acc >> w->nbits);
    }
}

/* Width bookkeeping shared by both table kinds: after adding entry
 * `next_code - 1` and writing a code. Returns 1 when the table is full
 * (a CLEAR was written and the caller must start a new generation). */
static inline int after_code(BitWriter *w, uint32_t *next_code, int *width)
{
    uint32_t next = *next_code;
    if (next == 512) {
        *width = 10;
    } else if (next == 1024) {
        *width = 11;
    } else if (next == 2048) {
        *width = 12;
    } else if (next == 4096) {
        put(w, CLEAR, *width);
        *next_code = 258;
        *width = 9;
        return 1;
    }
    return 0;
}

static void finish(BitWriter *w, uint32_t omega, uint32_t next_code, int width)
{
    put(w, omega, width);
    if (next_code == 511) {
        width = 10;
    } else if (next_code == 1023) {
        width = 11;
    } else if (next_code == 2047) {
        width = 12;
    }
    put(w, EOI, width);
    /* 1..8 zero bits to the next byte boundary (imagecodecs' padding). */
    put(w, 0, 8 - (w->nbits & 7));
}

/* Direct table: row of code c at c << shift (shift: the alphabet rounded up
 * to a power of two, so following an entry costs a shift, not a multiply);
 * entry = stamp << 12 | child code, 16 bits: a small footprint keeps the hot
 * rows in the L1/L2 cache. Stamps 1..15 (0: never set); after 15 table
 * generations the table is cleared for real. */
static int encode_direct(const uint8_t *src, Py_ssize_t n, const uint8_t *symbol, int k, BitWriter *w)
{
    int shift = 0;
    while ((1 << shift) < k) {
        shift++;
    }
    size_t entries = (size_t)4096 << shift;
    uint16_t *table = calloc(entries, sizeof(uint16_t));
    if (table == NULL) {
        return -1;
    }
    /* Runs: the string v^L (L copies of byte v) is only ever made from
     * v^(L-1), so the run strings of v in the table are v^1 .. v^longest[v]
     * and run_code[v][L] names them. While omega is such a string and the
     * input goes on with v, the greedy parse just climbs that ladder: the
     * run ahead is measured (8 bytes at a time) and the climb done in one
     * step, instead of one table lookup per byte. */
    uint16_t *run_code = malloc((size_t)k * 4100 * sizeof(uint16_t));
    uint16_t longest[256];
    if (run_code == NULL) {
        free(table);
        return -1;
    }
    for (int sym = 0; sym < k; sym++) {
        longest[sym] = 1;
    }
    uint32_t stamp = 1u << 12;
    uint32_t next_code = 258;
    int width = 9;
    uint32_t omega = src[0];
    uint32_t run_length = 1; /* omega is (run_value)^run_length; 0: not a run */
    uint8_t run_value = src[0];
    Py_ssize_t scanned_end = 0; /* the last run measured: of scanned_value, up to here */
    uint8_t scanned_value = 0;
    run_code[(size_t)symbol[src[0]] * 4100 + 1] = src[0];
    Py_ssize_t i = 1;
    while (i < n) {
        uint8_t byte = src[i];
        if (run_length && byte == run_value) {
            uint32_t sym = symbol[byte];
            uint16_t *ladder = &run_code[(size_t)sym * 4100];
            Py_ssize_t end;
            if (byte == scanned_value && i < scanned_end) {
                end = scanned_end;
            } else {
                end = i + 1;
                uint64_t pattern = 0x0101010101010101ull * byte;
                while (end + 8 <= n) {
                    uint64_t word;
                    memcpy(&word, src + end, 8);
                    if (word != pattern) {
                        break;
                    }
                    end += 8;
                }
                while (end < n && src[end] == byte) {
                    end++;
                }
                scanned_end = end;
                scanned_value = byte;
            }
            uint32_t top = longest[sym];
            Py_ssize_t ahead = end - i;
            if (run_length + ahead <= top) { /* the whole run is in the table */
                run_length += (uint32_t)ahead;
                omega = ladder[run_length];
                i = end;
                continue;
            }
            /* Climb to the top (v^top), then v^(top+1) is new: write v^top. */
            i += top - run_length;
            omega = ladder[top];
            table[(omega << shift) | sym] = (uint16_t)(stamp | next_code);
            ladder[top + 1] = (uint16_t)next_code;
            longest[sym] = (uint16_t)(top + 1);
            next_code++;
            put(w, omega, width);
            omega = byte;
            run_length = 1;
            ladder[1] = byte;
            i++;
            if (after_code(w, &next_code, &width)) {
                stamp += 1u << 12;
                if (stamp == 0x10000u) {
                    memset(table, 0, entries * sizeof(uint16_t));
                    stamp = 1u << 12;
                }
                for (int t = 0; t < k; t++) {
                    longest[t] = 1;
                }
            }
            continue;
        }
        uint16_t *slot = &table[(omega << shift) | symbol[byte]];
        uint32_t entry = *slot;
        i++;
        if ((entry & 0xF000u) == stamp) {
            omega = entry & 0xFFFu;
            run_length = 0;
            continue;
        }
        *slot = (uint16_t)(stamp | next_code);
        next_code++;
        put(w, omega, width);
        omega = byte;
        run_length = 1;
        run_value = byte;
        run_code[(size_t)symbol[byte] * 4100 + 1] = byte;
        if (after_code(w, &next_code, &width)) {
            stamp += 1u << 12;
            if (stamp == 0x10000u) { /* 15 generations used: clear for real */
                memset(table, 0, entries * sizeof(uint16_t));
                stamp = 1u << 12;
            }
            for (int t = 0; t < k; t++) {
                longest[t] = 1;
            }
        }
    }
    finish(w, omega, next_code, width);
    free(run_code);
    free(table);
    return 0;
}

/* Hash table: key = generation << 20 | code << 8 | byte (never 0). */
static int encode_hashed(const uint8_t *src, Py_ssize_t n, BitWriter *w)
{
    uint64_t *keys = calloc(HASH_SIZE, sizeof(uint64_t));
    uint16_t *codes = malloc(HASH_SIZE * sizeof(uint16_t));
    if (keys == NULL || codes == NULL) {
        free(keys);
        free(codes);
        return -1;
    }
    uint64_t generation = (uint64_t)1 << 20;
    uint32_t next_code = 258;
    int width = 9;
    uint32_t omega = src[0];
    for (Py_ssize_t i = 1; i < n; i++) {
        uint8_t byte = src[i];
        uint32_t pair = omega << 8 | byte;
        uint64_t key = generation | pair;
        uint32_t h = (pair * 2654435761u) >> (32 - HASH_BITS);
        int found = 0;
        while (keys[h] != 0 && (keys[h] >> 20) >= (generation >> 20)) {
            if (keys[h] == key) {
                found = 1;
                break;
            }
            h = (h + 1) & (HASH_SIZE - 1);
        }
        if (found) {
            omega = codes[h];
            continue;
        }
        /* An empty slot or one of an older generation: take it. At most
         * 3838 live entries in 16384 slots keeps probe runs short; stale
         * slots are reused, so older generations never pile up. */
        keys[h] = key;
        codes[h] = (uint16_t)next_code;
        next_code++;
        put(w, omega, width);
        omega = byte;
        if (after_code(w, &next_code, &width)) {
            generation += (uint64_t)1 << 20;
        }
    }
    finish(w, omega, next_code, width);
    free(keys);
    free(codes);
    return 0;
}

static PyObject *lzw_encode(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    const uint8_t *src = view.buf;
    Py_ssize_t n = view.len;
    /* At most n + 1 codes plus one CLEAR per 3838 codes, each <= 12 bits. */
    size_t bound = (size_t)n * 2 + 64;
    uint8_t *out = malloc(bound);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    BitWriter w = {out, 0, 0};
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    put(&w, CLEAR, 9);
    if (n == 0) {
        put(&w, EOI, 9);
        put(&w, 0, 8 - (w.nbits & 7));
    } else {
        uint8_t seen[256] = {0};
        uint8_t symbol[256];
        int k = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            seen[src[i]] = 1;
        }
        for (int b = 0; b < 256; b++) {
            symbol[b] = (uint8_t)k;
            k += seen[b];
        }
        if (k <= DIRECT_MAX) {
            status = encode_direct(src, n, symbol, k, &w);
        } else {
            status = encode_hashed(src, n, &w);
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (status < 0) {
        free(out);
        return PyErr_NoMemory();
    }
    PyObject *result = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)(w.out - out));
    free(out);
    return result;
}

/* uniform_rows(data, row_bytes) -> bytes: one int16 per row of the
 * C-contiguous buffer (native byte order): the byte every byte of the row
 * equals, or -1. Stops comparing a row at its first differing byte, so a
 * busy tile costs a few bytes per row. */
static PyObject *uniform_rows(PyObject *module, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t row_bytes;
    if (!PyArg_ParseTuple(args, "y*n", &view, &row_bytes)) {
        return NULL;
    }
    if (row_bytes <= 0 || view.len % row_bytes) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "buffer length is not a multiple of row_bytes");
        return NULL;
    }
    Py_ssize_t rows = view.len / row_bytes;
    PyObject *result = PyBytes_FromStringAndSize(NULL, rows * (Py_ssize_t)sizeof(int16_t));
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int16_t *out = (int16_t *)PyBytes_AS_STRING(result);
    const uint8_t *src = view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        const uint8_t *row = src + r * row_bytes;
        uint8_t first = row[0];
        Py_ssize_t i = 1;
        /* 8 bytes at a time against the first byte repeated. */
        uint64_t pattern = 0x0101010101010101ull * first;
        for (; i + 8 <= row_bytes; i += 8) {
            uint64_t word;
            memcpy(&word, row + i, 8);
            if (word != pattern) {
                break;
            }
        }
        for (; i < row_bytes && row[i] == first; i++) {
        }
        out[r] = i == row_bytes ? (int16_t)first : (int16_t)-1;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return result;
}

/* The rule of pyramid._mode: a, unless a occurs once and another value
 * occurs at least twice: then b if b has a partner (c or d), else c. */
#define MODE_KERNEL(T)                                                                       \
    static void mode_##T(const char *src, Py_ssize_t s0, Py_ssize_t s1, char *dst,          \
                         Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t rows, Py_ssize_t cols)    \
    {                                                                                        \
        for (Py_ssize_t r = 0; r < rows; r++) {                                              \
            const char *top = src + 2 * r * s0;                                              \
            const char *bottom = top + s0;                                                   \
            char *out = dst + r * d0;                                                        \
            for (Py_ssize_t k = 0; k < cols; k++) {                                          \
                T a = *(const T *)(top + 2 * k * s1);                                        \
                T b = *(const T *)(top + (2 * k + 1) * s1);                                  \
                T c = *(const T *)(bottom + 2 * k * s1);                                     \
                T d = *(const T *)(bottom + (2 * k + 1) * s1);                               \
                T m = a;                                                                     \
                if (a != b && a != c && a != d) {                                            \
                    if (b == c || b == d) {                                                  \
                        m = b;                                                               \
                    } else if (c == d) {                                                     \
                        m = c;                                                               \
                    }                                                                        \
                }                                                                            \
                *(T *)(out + k * d1) = m;                                                    \
            }                                                                                \
        }                                                                                    \
    }
MODE_KERNEL(uint8_t)
MODE_KERNEL(uint16_t)
MODE_KERNEL(uint32_t)
MODE_KERNEL(uint64_t)

/* mode2x2(src, out): out[r, k] = mode of src[2r:2r+2, 2k:2k+2]; src a 2-D
 * (2R, 2C) buffer, out a writable (R, C) one, same item size (1, 2, 4, 8:
 * compared as unsigned integers, so only for integer data), any strides. */
static PyObject *mode2x2(PyObject *module, PyObject *args)
{
    PyObject *src_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "OO", &src_obj, &out_obj)) {
        return NULL;
    }
    Py_buffer src, out;
    if (PyObject_GetBuffer(src_obj, &src, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_STRIDES | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    PyObject *result = NULL;
    if (src.ndim != 2 || out.ndim != 2 || src.itemsize != out.itemsize
        || src.shape[0] != 2 * out.shape[0] || src.shape[1] != 2 * out.shape[1]) {
        PyErr_SetString(PyExc_ValueError, "mode2x2: src must be (2R, 2C) and out (R, C), one item size");
        goto done;
    }
    Py_ssize_t rows = out.shape[0], cols = out.shape[1];
    Py_ssize_t itemsize = src.itemsize;
    if (itemsize != 1 && itemsize != 2 && itemsize != 4 && itemsize != 8) {
        PyErr_SetString(PyExc_ValueError, "mode2x2: item size must be 1, 2, 4 or 8");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    switch (itemsize) {
    case 1:
        mode_uint8_t(src.buf, src.strides[0], src.strides[1], out.buf, out.strides[0], out.strides[1], rows, cols);
        break;
    case 2:
        mode_uint16_t(src.buf, src.strides[0], src.strides[1], out.buf, out.strides[0], out.strides[1], rows, cols);
        break;
    case 4:
        mode_uint32_t(src.buf, src.strides[0], src.strides[1], out.buf, out.strides[0], out.strides[1], rows, cols);
        break;
    default:
        mode_uint64_t(src.buf, src.strides[0], src.strides[1], out.buf, out.strides[0], out.strides[1], rows, cols);
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyBuffer_Release(&src);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"mode2x2", mode2x2, METH_VARARGS,
     "mode2x2(src, out): the 2x2 majority rule of pyramid.py on an unsigned-integer plane."},
    {"uniform_rows", uniform_rows, METH_VARARGS,
     "uniform_rows(data, row_bytes) -> bytes: per row an int16, the row's one byte value or -1."},
    {"lzw_encode", lzw_encode, METH_O,
     "lzw_encode(data) -> bytes: TIFF LZW stream of a C-contiguous buffer (as imagecodecs.lzw_encode)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_speedups", "Optional compiled speed-ups (see lzw.py, pyramid.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    return PyModule_Create(&module_def);
}
