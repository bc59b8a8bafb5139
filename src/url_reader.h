/* Reading an http(s) URL as a stream, on the S3 client's request engine
 * (s3_request.c) and the shared transport's policy (http.c): ranged GETs,
 * one range at a time into the caller's sink, so nothing is kept on disk and
 * no more than a range is ever in memory; a transfer cut off mid-range is
 * resumed from the byte reached (If-Match: the ETag of the first answer, so
 * a resume never mixes two objects); transient failures, 5xx and 429 are
 * tried again as the transport's policy says; a signal stops the read.
 *
 * What is sent: the URL, Range and If-Match, nothing else (a presigned URL
 * carries its own authorisation; no credential of any kind is added). The
 * URL's query is registered as a secret (mxpc_redact_add): a presigned URL
 * lets whoever holds it read the object. */
#ifndef MXPC_URL_READER_H
#define MXPC_URL_READER_H

#include <stddef.h>
#include <stdint.h>

#include "mxpc/s3.h"

struct mxpc_url_reader;

struct mxpc_url_error {
    /* expired (403: a presigned URL past its time, or refused), changed
     * (412: the object is not the one read so far), not_found (404), http
     * (any other answer), size (fewer bytes than the answer said), connect,
     * tls, interrupted, usage */
    char code[16];
    char message[768];
    char hint[256];
    long status; /* 0 when no answer arrived */
};

/* A reader of `url` (http:// or https://) from its first byte; NULL with e
 * filled when the URL is not one. */
struct mxpc_url_reader *mxpc_url_reader_new(const char *url, struct mxpc_url_error *e);
void mxpc_url_reader_free(struct mxpc_url_reader *u); /* NULL is fine */
/* Another URL for the same object (a fresh presigned one): the read goes on
 * from where it is, and the object must still be the one read so far. */
int mxpc_url_reader_set_url(struct mxpc_url_reader *u, const char *url, struct mxpc_url_error *e);
/* The next range (up to `max` bytes) into sink. Returns 0 with *got bytes
 * passed on (0: the end was reached), or -1 with e filled; a failed range can
 * be asked for again (after set_url), from the same offset. */
int mxpc_url_reader_next(struct mxpc_url_reader *u, int64_t max, mxpc_s3_sink_fn sink, void *ud, int64_t *got,
                         struct mxpc_url_error *e);
/* Bytes passed on so far, and the object's size (-1 until the first answer). */
int64_t mxpc_url_reader_offset(const struct mxpc_url_reader *u);
int64_t mxpc_url_reader_size(const struct mxpc_url_reader *u);
/* The URL without its query, for messages. */
const char *mxpc_url_reader_name(const struct mxpc_url_reader *u);

#endif
