/*
 * _chunker: casync's content-defined chunker as a CPython extension.
 *
 * Written for aria_storage from the facts of casync's chunker (the buzhash table, the
 * 48-byte window, the discriminator formula and the cut rule); the code is our own.
 *
 * The algorithm, for one chunk starting at byte 0 of the chunk:
 *
 *   - fixed-size mode (min == avg == max): the chunk ends after exactly that many bytes;
 *   - otherwise, with first = max(min, 48), the chunk ends after L bytes for the smallest
 *     L >= first such that L >= max, or buzhash(bytes L-48 .. L-1) % d == d - 1, where d
 *     is the discriminator derived from avg. Bytes before first - 48 are never hashed.
 *     When max < 48 this still cuts at 48 (casync does the same; casync make then fails
 *     when it writes such a chunk into its index).
 *
 * The stream's last chunk is whatever is left when the input ends; the Chunker only
 * reports the cuts it finds, the caller closes the last chunk.
 *
 * Chunker.feed() scans with the GIL released, so several threads can chunk (or hash and
 * compress) in parallel. One Chunker must not be fed from two threads at once: the second
 * call raises RuntimeError instead of corrupting the state.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

#define WINDOW_SIZE 48
#define SIZE_LIMIT_MIN ((uint64_t)1)
#define SIZE_LIMIT_MAX ((uint64_t)128 * 1024 * 1024)

/* At most this many cut offsets are collected per GIL-free pass; longer inputs are
 * scanned in slices that cannot hold more cuts than that. */
#define CUTS_PER_PASS 65536

/* Buffers below this many bytes are scanned without releasing the GIL. */
#define RELEASE_GIL_FROM 16384

#if defined(__GNUC__) || defined(__clang__)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define UNLIKELY(x) (x)
#endif

/* casync's buzhash table: one 32-bit value per byte value. */
static const uint32_t BUZ[256] = {
    /*   0 */ 0x458BE752u, 0xC10748CCu, 0xFBBCDBB8u, 0x6DED5B68u, 0xB10A82B5u, 0x20D75648u, 0xDFC5665Fu, 0xA8428801u,
    /*   8 */ 0x7EBF5191u, 0x841135C7u, 0x65CC53B3u, 0x280A597Cu, 0x16F60255u, 0xC78CBC3Eu, 0x294415F5u, 0xB938D494u,
    /*  16 */ 0xEC85C4E6u, 0xB7D33EDCu, 0xE549B544u, 0xFDEDA5AAu, 0x882BF287u, 0x3116737Cu, 0x05569956u, 0xE8CC1F68u,
    /*  24 */ 0x0806AC5Eu, 0x22A14443u, 0x15297E10u, 0x50D090E7u, 0x4BA60F6Fu, 0xEFD9F1A7u, 0x5C5C885Cu, 0x82482F93u,
    /*  32 */ 0x9BFD7C64u, 0x0B3E7276u, 0xF2688E77u, 0x8FAD8ABCu, 0xB0509568u, 0xF1ADA29Fu, 0xA53EFDFEu, 0xCB2B1D00u,
    /*  40 */ 0xF2A9E986u, 0x6463432Bu, 0x95094051u, 0x5A223AD2u, 0x9BE8401Bu, 0x61E579CBu, 0x1A556A14u, 0x5840FDC2u,
    /*  48 */ 0x9261DDF6u, 0xCDE002BBu, 0x52432BB0u, 0xBF17373Eu, 0x7B7C222Fu, 0x2955ED16u, 0x9F10CA59u, 0xE840C4C9u,
    /*  56 */ 0xCCABD806u, 0x14543F34u, 0x1462417Au, 0x0D4A1F9Cu, 0x087ED925u, 0xD7F8F24Cu, 0x7338C425u, 0xCF86C8F5u,
    /*  64 */ 0xB19165CDu, 0x9891C393u, 0x325384ACu, 0x0308459Du, 0x86141D7Eu, 0xC922116Au, 0xE2FFA6B6u, 0x53F52AEDu,
    /*  72 */ 0x2CD86197u, 0xF5B9F498u, 0xBF319C8Fu, 0xE0411FAEu, 0x977EB18Cu, 0xD8770976u, 0x9833466Au, 0xC674DF7Fu,
    /*  80 */ 0x8C297D45u, 0x8CA48D26u, 0xC49ED8E2u, 0x7344F874u, 0x556F79C7u, 0x6B25EAEDu, 0xA03E2B42u, 0xF68F66A4u,
    /*  88 */ 0x8E8B09A2u, 0xF2E0E62Au, 0x0D3A9806u, 0x9729E493u, 0x8C72B0FCu, 0x160B94F6u, 0x450E4D3Du, 0x7A320E85u,
    /*  96 */ 0xBEF8F0E1u, 0x21D73653u, 0x4E3D977Au, 0x1E7B3929u, 0x1CC6C719u, 0xBE478D53u, 0x8D752809u, 0xE6D8C2C6u,
    /* 104 */ 0x275F0892u, 0xC8ACC273u, 0x4CC21580u, 0xECC4A617u, 0xF5F7BE70u, 0xE795248Au, 0x375A2FE9u, 0x425570B6u,
    /* 112 */ 0x8898DCF8u, 0xDC2D97C4u, 0x0106114Bu, 0x364DC22Fu, 0x1E0CAD1Fu, 0xBE63803Cu, 0x5F69FAC2u, 0x4D5AFA6Fu,
    /* 120 */ 0x1BC0DFB5u, 0xFB273589u, 0x0EA47F7Bu, 0x3C1C2B50u, 0x21B2A932u, 0x6B1223FDu, 0x2FE706A8u, 0xF9BD6CE2u,
    /* 128 */ 0xA268E64Eu, 0xE987F486u, 0x3EACF563u, 0x1CA2018Cu, 0x65E18228u, 0x2207360Au, 0x57CF1715u, 0x34C37D2Bu,
    /* 136 */ 0x1F8F3CDEu, 0x93B657CFu, 0x31A019FDu, 0xE69EB729u, 0x8BCA7B9Bu, 0x4C9D5BEDu, 0x277EBEAFu, 0xE0D8F8AEu,
    /* 144 */ 0xD150821Cu, 0x31381871u, 0xAFC3F1B0u, 0x927DB328u, 0xE95EFFACu, 0x305A47BDu, 0x426BA35Bu, 0x1233AF3Fu,
    /* 152 */ 0x686A5B83u, 0x50E072E5u, 0xD9D3BB2Au, 0x8BEFC475u, 0x487F0DE6u, 0xC88DFF89u, 0xBD664D5Eu, 0x971B5D18u,
    /* 160 */ 0x63B14847u, 0xD7D3C1CEu, 0x7F583CF3u, 0x72CBCB09u, 0xC0D0A81Cu, 0x7FA3429Bu, 0xE9158A1Bu, 0x225EA19Au,
    /* 168 */ 0xD8CA9EA3u, 0xC763B282u, 0xBB0C6341u, 0x020B8293u, 0xD4CD299Du, 0x58CFA7F8u, 0x91B4EE53u, 0x37E4D140u,
    /* 176 */ 0x95EC764Cu, 0x30F76B06u, 0x5EE68D24u, 0x679C8661u, 0xA41979C2u, 0xF2B61284u, 0x4FAC1475u, 0x0ADB49F9u,
    /* 184 */ 0x19727A23u, 0x15A7E374u, 0xC43A18D5u, 0x3FB1AA73u, 0x342FC615u, 0x924C0793u, 0xBEE2D7F0u, 0x8A279DE9u,
    /* 192 */ 0x4AA2D70Cu, 0xE24DD37Fu, 0xBE862C0Bu, 0x177C22C2u, 0x5388E5EEu, 0xCD8A7510u, 0xF901B4FDu, 0xDBC13DBCu,
    /* 200 */ 0x6C0BAE5Bu, 0x64EFE8C7u, 0x48B02079u, 0x80331A49u, 0xCA3D8AE6u, 0xF3546190u, 0xFED7108Bu, 0xC49B941Bu,
    /* 208 */ 0x32BAF4A9u, 0xEB833A4Au, 0x88A3F1A5u, 0x3A91CE0Au, 0x3CC27DA1u, 0x7112E684u, 0x4A3096B1u, 0x3794574Cu,
    /* 216 */ 0xA3C8B6F3u, 0x1D213941u, 0x6E0A2E00u, 0x233479F1u, 0x0F4CD82Fu, 0x6093EDD2u, 0x5D7D209Eu, 0x464FE319u,
    /* 224 */ 0xD4DCAC9Eu, 0x0DB845CBu, 0xFB5E4BC3u, 0xE0256CE1u, 0x09FB4ED1u, 0x0914BE1Eu, 0xA5BDB2C3u, 0xC6EB57BBu,
    /* 232 */ 0x30320350u, 0x3F397E91u, 0xA67791BCu, 0x86BC0E2Cu, 0xEFA0A7E2u, 0xE9FF7543u, 0xE733612Cu, 0xD185897Bu,
    /* 240 */ 0x329E5388u, 0x91DD236Bu, 0x2ECB0D93u, 0xF4D82A3Du, 0x35B5C03Fu, 0xE4E606F0u, 0x05B21843u, 0x37B45964u,
    /* 248 */ 0x5EFF22F4u, 0x6027F4CCu, 0x77178B3Cu, 0xAE507131u, 0x7BF7CABCu, 0xF9C18D66u, 0x593ADE65u, 0xD95DDF11u,
};

/* BUZ[x] rotated left by the window size (48 mod 32 = 16): what leaves the hash when
 * byte x drops out of the window. Filled at module import. */
static uint32_t BUZ_OUT[256];

static inline uint32_t
rotl32(uint32_t x, unsigned r)
{
    r &= 31u;
    return r == 0 ? x : (uint32_t)((x << r) | (x >> (32u - r)));
}

/* The hash of a whole window: byte j of n enters rotated left by n - 1 - j. */
static uint32_t
window_hash(const uint8_t *w, size_t n)
{
    uint32_t h = 0;
    for (size_t j = 0; j < n; j++)
        h ^= rotl32(BUZ[w[j]], (unsigned)((n - 1 - j) & 31u));
    return h;
}

/* The discriminator casync uses for these sizes: avg / (1.33237515 - 1.42888852e-7 avg)
 * in double precision, truncated to an integer and clamped to [min, max]. The product is
 * rounded before the addition (no fused multiply-add), as in casync's x86-64 build. For
 * avg above ~9.3 MiB the divisor is negative; the conversion casync does there yields a
 * huge value on x86-64, so the result is clamped to max. */
static uint64_t
discriminator_for(uint64_t min, uint64_t avg, uint64_t max)
{
    volatile double product = -1.42888852e-7 * (double)avg;
    double q = (double)avg / (product + 1.33237515);
    uint64_t d;

    if (!(q >= 0.0) || q >= 18446744073709551616.0)
        d = UINT64_MAX;
    else
        d = (uint64_t)q;
    if (d < min)
        d = min;
    if (d > max)
        d = max;
    return d;
}

/* h % d == d - 1, without a division: h - (d - 1) divisible by d, tested with one
 * multiplication (Lemire, Kaser & Kurz, "Faster remainder by direct computation"):
 * for 32-bit n, d divides n iff n * c <= c - 1 (mod 2^64) where c = ceil(2^64 / d). */
typedef struct {
    uint32_t d_minus_1;
    uint64_t c;          /* UINT64_MAX / d + 1, wraps to 0 for d == 1 */
    uint64_t c_minus_1;
} cut_test_t;

static void
cut_test_init(cut_test_t *t, uint32_t d)
{
    t->d_minus_1 = d - 1u;
    t->c = UINT64_MAX / d + 1u;
    t->c_minus_1 = t->c - 1u;
}

static inline int
cut_test(const cut_test_t *t, uint32_t h)
{
    return (uint64_t)(uint32_t)(h - t->d_minus_1) * t->c <= t->c_minus_1 && h >= t->d_minus_1;
}

/* ---- the chunking state machine (no Python in here) -------------------------------- */

typedef struct {
    uint64_t min, avg, max;
    uint64_t discriminator;
    cut_test_t test;
    int fixed;          /* min == avg == max */
    uint64_t first;     /* chunk length of the first tested window: max(min, WINDOW_SIZE) */
    uint64_t lead;      /* first - WINDOW_SIZE: bytes of a chunk never hashed */

    uint64_t chunk_size; /* bytes of the current, unfinished chunk seen so far */
    uint32_t h;          /* hash of the window ending at the last byte seen */
    /* The chunk's bytes lead .. chunk_size-1 while filling (chunk_size < first), then
     * its last WINDOW_SIZE bytes, oldest first. */
    uint8_t window[WINDOW_SIZE];
} kernel_t;

#define NO_CUT SIZE_MAX

static int
kernel_init(kernel_t *k, uint64_t min, uint64_t avg, uint64_t max)
{
    memset(k, 0, sizeof(*k));
    k->min = min;
    k->avg = avg;
    k->max = max;
    k->discriminator = discriminator_for(min, avg, max);
    cut_test_init(&k->test, (uint32_t)k->discriminator);
    k->fixed = min == avg && avg == max;
    k->first = min > WINDOW_SIZE ? min : WINDOW_SIZE;
    k->lead = k->first - WINDOW_SIZE;
    return 0;
}

static inline void
kernel_restart(kernel_t *k)
{
    k->chunk_size = 0;
    k->h = 0;
}

/* Consume p[0 .. n) up to the next cut. Returns the number of bytes up to and including
 * the chunk's last byte (1 .. n), or NO_CUT when all n bytes were consumed without one. */
static size_t
kernel_next_cut(kernel_t *k, const uint8_t *p, size_t n)
{
    size_t i = 0;

    if (k->fixed) {
        uint64_t need = k->max - k->chunk_size;
        if ((uint64_t)n < need) {
            k->chunk_size += n;
            return NO_CUT;
        }
        kernel_restart(k);
        return (size_t)need;
    }

    /* Bytes that never enter a tested window are only counted. */
    if (k->chunk_size < k->lead) {
        uint64_t skip = k->lead - k->chunk_size;
        if (skip >= (uint64_t)n) {
            k->chunk_size += n;
            return NO_CUT;
        }
        i = (size_t)skip;
        k->chunk_size = k->lead;
    }

    /* Fill the first window; its hash is the first one tested. */
    if (k->chunk_size < k->first) {
        size_t have = (size_t)(k->chunk_size - k->lead);
        size_t m = WINDOW_SIZE - have;
        if (m > n - i)
            m = n - i;
        memcpy(k->window + have, p + i, m);
        i += m;
        k->chunk_size += m;
        if (k->chunk_size < k->first)
            return NO_CUT;
        k->h = window_hash(k->window, WINDOW_SIZE);
        if (k->chunk_size >= k->max || cut_test(&k->test, k->h)) {
            kernel_restart(k);
            return i;
        }
    }

    /* Roll: here first <= chunk_size < max. */
    {
        const uint8_t *q = p + i;
        const cut_test_t test = k->test;
        uint64_t budget = k->max - k->chunk_size; /* bytes up to the forced cut, >= 1 */
        size_t steps = n - i;
        size_t j = 0, head;
        uint32_t h = k->h;

        if ((uint64_t)steps > budget)
            steps = (size_t)budget;

        /* The first WINDOW_SIZE bytes push out the saved window ... */
        head = steps < WINDOW_SIZE ? steps : WINDOW_SIZE;
        for (; j < head; j++) {
            h = rotl32(h, 1) ^ BUZ_OUT[k->window[j]] ^ BUZ[q[j]];
            if (UNLIKELY(cut_test(&test, h)))
                goto cut;
        }
        /* ... then they push out bytes of this buffer. */
        for (; j < steps; j++) {
            h = rotl32(h, 1) ^ BUZ_OUT[q[j - WINDOW_SIZE]] ^ BUZ[q[j]];
            if (UNLIKELY(cut_test(&test, h)))
                goto cut;
        }

        k->chunk_size += steps;
        if ((uint64_t)steps == budget) { /* reached max */
            kernel_restart(k);
            return i + steps;
        }

        /* Out of input: keep the last WINDOW_SIZE bytes for the next buffer. */
        if (steps >= WINDOW_SIZE) {
            memcpy(k->window, q + steps - WINDOW_SIZE, WINDOW_SIZE);
        } else {
            memmove(k->window, k->window + steps, WINDOW_SIZE - steps);
            memcpy(k->window + WINDOW_SIZE - steps, q, steps);
        }
        k->h = h;
        return NO_CUT;

    cut:
        kernel_restart(k);
        return i + j + 1;
    }
}

/* Scan p[0 .. n), storing the end offsets (relative to p) of the chunks that end in it.
 * The caller guarantees room: see max_cuts(). Returns the number stored. */
static size_t
kernel_scan(kernel_t *k, const uint8_t *p, size_t n, uint64_t *cuts)
{
    size_t off = 0, count = 0;

    while (off < n) {
        size_t c = kernel_next_cut(k, p + off, n - off);
        if (c == NO_CUT)
            break;
        off += c;
        cuts[count++] = off;
    }
    return count;
}

/* The shortest chunk the kernel can cut (except the one already under way). */
static uint64_t
shortest_chunk(const kernel_t *k)
{
    return k->fixed ? k->max : k->first;
}

/* ---- Python: the Chunker type ------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    kernel_t k;
    uint64_t position; /* bytes fed since creation or reset() */
    int busy;          /* a feed() is running (maybe without the GIL) */
} ChunkerObject;

/* Read a size argument: an int (TypeError otherwise); out-of-range values become
 * LLONG_MIN / LLONG_MAX so the range checks name them. Stores the int in *shown. */
static int
get_size(PyObject *obj, long long *out, PyObject **shown)
{
    int overflow = 0;
    PyObject *index = PyNumber_Index(obj);
    long long v;

    if (index == NULL)
        return -1;
    v = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(index);
        return -1;
    }
    if (overflow > 0)
        v = LLONG_MAX;
    else if (overflow < 0)
        v = LLONG_MIN;
    *out = v;
    *shown = index;
    return 0;
}

/* casync's checks (ca_chunker_set_size with all three given), in its order. */
static int
parse_sizes(PyObject *args, PyObject *kwargs, uint64_t *rmin, uint64_t *ravg, uint64_t *rmax)
{
    static char *keywords[] = {"min_size", "avg_size", "max_size", NULL};
    PyObject *omin, *oavg, *omax;
    PyObject *imin = NULL, *iavg = NULL, *imax = NULL;
    long long min, avg, max;
    int result = -1;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO", keywords, &omin, &oavg, &omax))
        return -1;
    if (get_size(omin, &min, &imin) < 0 || get_size(oavg, &avg, &iavg) < 0 ||
        get_size(omax, &max, &imax) < 0)
        goto done;

    if (avg < (long long)SIZE_LIMIT_MIN || avg > (long long)SIZE_LIMIT_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "avg_size=%R is outside casync's chunk size limits %llu..%llu", iavg,
                     (unsigned long long)SIZE_LIMIT_MIN, (unsigned long long)SIZE_LIMIT_MAX);
        goto done;
    }
    if (min < (long long)SIZE_LIMIT_MIN) {
        PyErr_Format(PyExc_ValueError, "min_size=%R is below casync's limit %llu", imin,
                     (unsigned long long)SIZE_LIMIT_MIN);
        goto done;
    }
    if (min > avg) {
        PyErr_Format(PyExc_ValueError, "min_size=%R is larger than avg_size=%R", imin, iavg);
        goto done;
    }
    if (max > (long long)SIZE_LIMIT_MAX) {
        PyErr_Format(PyExc_ValueError, "max_size=%R is above casync's limit %llu", imax,
                     (unsigned long long)SIZE_LIMIT_MAX);
        goto done;
    }
    if (max < avg) {
        PyErr_Format(PyExc_ValueError, "max_size=%R is smaller than avg_size=%R", imax, iavg);
        goto done;
    }
    *rmin = (uint64_t)min;
    *ravg = (uint64_t)avg;
    *rmax = (uint64_t)max;
    result = 0;
done:
    Py_XDECREF(imin);
    Py_XDECREF(iavg);
    Py_XDECREF(imax);
    return result;
}

static int
Chunker_init(ChunkerObject *self, PyObject *args, PyObject *kwargs)
{
    uint64_t min, avg, max;

    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Chunker is in use by another thread");
        return -1;
    }
    if (parse_sizes(args, kwargs, &min, &avg, &max) < 0)
        return -1;
    kernel_init(&self->k, min, avg, max);
    self->position = 0;
    return 0;
}

static PyObject *
Chunker_feed(ChunkerObject *self, PyObject *arg)
{
    Py_buffer view;
    uint64_t *cuts = NULL;
    PyObject *result = NULL;
    const uint8_t *p;
    size_t n, done = 0, slice_max, room;
    uint64_t shortest;

    if (self->k.max == 0) {
        PyErr_SetString(PyExc_RuntimeError, "Chunker.__init__() was not called");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Chunker.feed() is already running in another thread");
        PyBuffer_Release(&view);
        return NULL;
    }
    p = (const uint8_t *)view.buf;
    n = (size_t)view.len;

    /* A slice of slice_max bytes holds at most CUTS_PER_PASS cuts: one ending the chunk
     * under way, then at most one per `shortest` bytes. */
    shortest = shortest_chunk(&self->k);
    if (shortest >= (uint64_t)SIZE_MAX / CUTS_PER_PASS)
        slice_max = SIZE_MAX;
    else
        slice_max = (size_t)(shortest * (CUTS_PER_PASS - 1));
    room = n / (size_t)shortest + 1;
    if (room > CUTS_PER_PASS)
        room = CUTS_PER_PASS;

    result = PyList_New(0);
    if (result == NULL)
        goto fail;
    cuts = PyMem_Malloc(room * sizeof(*cuts));
    if (cuts == NULL) {
        PyErr_NoMemory();
        goto fail;
    }

    self->busy = 1;
    while (done < n) {
        size_t len = n - done, count;
        if (len > slice_max)
            len = slice_max;
        if (len >= RELEASE_GIL_FROM) {
            Py_BEGIN_ALLOW_THREADS
            count = kernel_scan(&self->k, p + done, len, cuts);
            Py_END_ALLOW_THREADS
        } else {
            count = kernel_scan(&self->k, p + done, len, cuts);
        }
        for (size_t c = 0; c < count; c++) {
            PyObject *v = PyLong_FromUnsignedLongLong(cuts[c] + done);
            if (v == NULL || PyList_Append(result, v) < 0) {
                /* The scan itself is done; only the report failed. Keep the state
                 * consistent with the bytes consumed so far. */
                Py_XDECREF(v);
                self->position += done + len;
                self->busy = 0;
                goto fail;
            }
            Py_DECREF(v);
        }
        done += len;
    }
    self->position += n;
    self->busy = 0;
    PyMem_Free(cuts);
    PyBuffer_Release(&view);
    return result;

fail:
    PyMem_Free(cuts);
    Py_XDECREF(result);
    PyBuffer_Release(&view);
    return NULL;
}

static PyObject *
Chunker_reset(ChunkerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Chunker is in use by another thread");
        return NULL;
    }
    kernel_restart(&self->k);
    self->position = 0;
    Py_RETURN_NONE;
}

static PyObject *
Chunker_repr(ChunkerObject *self)
{
    return PyUnicode_FromFormat("Chunker(min_size=%llu, avg_size=%llu, max_size=%llu)",
                                (unsigned long long)self->k.min,
                                (unsigned long long)self->k.avg,
                                (unsigned long long)self->k.max);
}

#define U64_GETTER(name, expr)                                                           \
    static PyObject *Chunker_get_##name(ChunkerObject *self, void *Py_UNUSED(closure))   \
    {                                                                                    \
        return PyLong_FromUnsignedLongLong((unsigned long long)(expr));                  \
    }

U64_GETTER(min_size, self->k.min)
U64_GETTER(avg_size, self->k.avg)
U64_GETTER(max_size, self->k.max)
U64_GETTER(discriminator, self->k.discriminator)
U64_GETTER(position, self->position)
U64_GETTER(pending, self->k.chunk_size)

static PyObject *
Chunker_get_fixed(ChunkerObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->k.fixed);
}

static PyGetSetDef Chunker_getset[] = {
    {"min_size", (getter)Chunker_get_min_size, NULL, "The minimum chunk size.", NULL},
    {"avg_size", (getter)Chunker_get_avg_size, NULL, "The average chunk size.", NULL},
    {"max_size", (getter)Chunker_get_max_size, NULL, "The maximum chunk size.", NULL},
    {"discriminator", (getter)Chunker_get_discriminator, NULL,
     "d of the cut test hash % d == d - 1 (casync's, from avg_size).", NULL},
    {"fixed", (getter)Chunker_get_fixed, NULL,
     "True in fixed-size mode (min_size == avg_size == max_size).", NULL},
    {"position", (getter)Chunker_get_position, NULL,
     "Bytes fed since the Chunker was made or reset.", NULL},
    {"pending", (getter)Chunker_get_pending, NULL,
     "Bytes of the current chunk fed so far (not yet ended by a cut).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Chunker_methods[] = {
    {"feed", (PyCFunction)Chunker_feed, METH_O,
     "feed(buffer) -> list[int]\n\n"
     "Scan the next bytes of the stream (any contiguous buffer, not copied) and return\n"
     "the offsets, relative to this buffer, just past the last byte of every chunk that\n"
     "ends in it. The GIL is released while scanning large buffers; do not resize the\n"
     "buffer from another thread meanwhile. The stream's final chunk has no cut: when\n"
     "the input ends, the last `pending` bytes form it."},
    {"reset", (PyCFunction)Chunker_reset, METH_NOARGS,
     "reset() -> None\n\nForget the stream fed so far; the next byte starts a chunk."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ChunkerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aria_actors.services.storage._chunker.Chunker",
    .tp_doc = "Chunker(min_size, avg_size, max_size)\n\n"
              "casync's content-defined chunker over a stream fed in pieces.\n"
              "ValueError when the sizes break casync's rules: 1 <= min_size <= avg_size\n"
              "<= max_size <= 128 MiB.",
    .tp_basicsize = sizeof(ChunkerObject),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Chunker_init,
    .tp_repr = (reprfunc)Chunker_repr,
    .tp_methods = Chunker_methods,
    .tp_getset = Chunker_getset,
};

/* ---- Python: module functions --------------------------------------------------------- */

static PyObject *
mod_buzhash(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    uint32_t h;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    h = window_hash((const uint8_t *)view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(h);
}

static int
get_u32(PyObject *obj, const char *name, uint32_t limit, uint32_t *out)
{
    unsigned long long v;
    PyObject *index = PyNumber_Index(obj);

    if (index == NULL)
        return -1;
    v = PyLong_AsUnsignedLongLong(index);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        v = (unsigned long long)limit + 1;
    }
    if (v > limit) {
        PyErr_Format(PyExc_ValueError, "%s=%R is outside 0..%lu", name, index,
                     (unsigned long)limit);
        Py_DECREF(index);
        return -1;
    }
    Py_DECREF(index);
    *out = (uint32_t)v;
    return 0;
}

static PyObject *
mod_buzhash_roll(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t h, leave, enter;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "buzhash_roll(h, leave, enter) takes 3 arguments");
        return NULL;
    }
    if (get_u32(args[0], "h", UINT32_MAX, &h) < 0 ||
        get_u32(args[1], "leave", 255, &leave) < 0 ||
        get_u32(args[2], "enter", 255, &enter) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(rotl32(h, 1) ^ BUZ_OUT[leave] ^ BUZ[enter]);
}

static PyObject *
mod_discriminator(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    uint64_t min, avg, max;

    if (parse_sizes(args, kwargs, &min, &avg, &max) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(discriminator_for(min, avg, max));
}

static PyObject *
mod_is_cut_hash(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t h, d;
    cut_test_t t;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "is_cut_hash(h, discriminator) takes 2 arguments");
        return NULL;
    }
    if (get_u32(args[0], "h", UINT32_MAX, &h) < 0 ||
        get_u32(args[1], "discriminator", UINT32_MAX, &d) < 0)
        return NULL;
    if (d == 0) {
        PyErr_SetString(PyExc_ValueError, "discriminator=0 is outside 1..4294967295");
        return NULL;
    }
    cut_test_init(&t, d);
    return PyBool_FromLong(cut_test(&t, h));
}

static PyMethodDef module_methods[] = {
    {"buzhash", (PyCFunction)mod_buzhash, METH_O,
     "buzhash(window) -> int\n\ncasync's buzhash of a whole window (any length; the chunker "
     "uses 48 bytes)."},
    {"buzhash_roll", (PyCFunction)(void (*)(void))mod_buzhash_roll, METH_FASTCALL,
     "buzhash_roll(h, leave, enter) -> int\n\nThe hash of a 48-byte window after byte "
     "`leave` drops out of it and byte `enter` comes in."},
    {"discriminator", (PyCFunction)(void (*)(void))mod_discriminator,
     METH_VARARGS | METH_KEYWORDS,
     "discriminator(min_size, avg_size, max_size) -> int\n\nThe d of casync's cut test "
     "hash % d == d - 1 for these sizes (ValueError as Chunker)."},
    {"is_cut_hash", (PyCFunction)(void (*)(void))mod_is_cut_hash, METH_FASTCALL,
     "is_cut_hash(h, discriminator) -> bool\n\nh % discriminator == discriminator - 1, "
     "computed the way the scan loop does."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aria_actors.services.storage._chunker",
    .m_doc = "casync's content-defined chunker (buzhash, 48-byte window), in C.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__chunker(void)
{
    PyObject *m;

    for (int x = 0; x < 256; x++)
        BUZ_OUT[x] = rotl32(BUZ[x], WINDOW_SIZE % 32);

    if (PyType_Ready(&ChunkerType) < 0)
        return NULL;
    m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ChunkerType);
    if (PyModule_AddObject(m, "Chunker", (PyObject *)&ChunkerType) < 0) {
        Py_DECREF(&ChunkerType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "WINDOW_SIZE", WINDOW_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "CHUNK_SIZE_LIMIT_MIN", (long)SIZE_LIMIT_MIN) < 0 ||
        PyModule_AddIntConstant(m, "CHUNK_SIZE_LIMIT_MAX", (long)SIZE_LIMIT_MAX) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
