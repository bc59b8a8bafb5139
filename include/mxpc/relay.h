/* A relay: what one child writes on its stdout goes into another child's
 * stdin, moved by a thread of ours (splice(2) from pipe to pipe, so the
 * bytes never reach user space), while the caller does other work.
 *
 * The relay never ends the consumer's input: it writes through a duplicate of
 * the consumer's stdin, and the consumer sees the end of its input only once
 * the caller closes that (mxpc_process_close_stdin) after judging the
 * producer's exit status, or kills it. A producer that fails half-way (or is
 * killed) is therefore never taken for a complete input: psql
 * --single-transaction killed before its input ends rolls back.
 *
 * A consumer that stops reading (it exited: judge it by its exit status) is
 * noted, and the rest of the producer's output is read and dropped, so that
 * the producer is not left blocked on a full pipe. */
#ifndef MXPC_RELAY_H
#define MXPC_RELAY_H

#include <stdint.h>

struct mxpc_process;
struct mxpc_relay;

/* Takes the producer's stdout (spawned with MXPC_PROCESS_PIPE) and starts
 * writing it into the consumer's stdin (MXPC_PROCESS_PIPE), which stays the
 * consumer's to write more to and to close once the relay is done. Returns 0
 * or an errno value (EINVAL: a child has no such pipe). */
int mxpc_relay_start(struct mxpc_relay **out, struct mxpc_process *producer, struct mxpc_process *consumer);

/* 1 once the producer's output has ended (or the relay failed), else 0. */
int mxpc_relay_poll(struct mxpc_relay *r);

/* Waits up to `ms` milliseconds (-1: until done) for the relay to be done,
 * polling mxpc_interrupted() and calling mxpc_tick(): 1 when done, 0 when
 * the time is up, or MXPC_PROCESS_EINTERRUPTED (the relay still runs; free
 * it). */
int mxpc_relay_wait(struct mxpc_relay *r, long ms);

/* Bytes written into the consumer so far (readable at any time). */
uint64_t mxpc_relay_bytes(const struct mxpc_relay *r);

/* Once done: 0, or the errno of a failed read or write; *consumer_gone says
 * whether the consumer stopped reading before the end. */
int mxpc_relay_result(const struct mxpc_relay *r, int *consumer_gone);

/* Stops the thread if it still runs, closes the relay's descriptors, frees.
 * NULL is fine. Never closes the consumer's own stdin. */
void mxpc_relay_free(struct mxpc_relay *r);

#endif
