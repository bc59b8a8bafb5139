/* The interrupt flag, the ticker and the transport's policy, without a Lua
 * state: what process.c, http.c, the S3 and Kubernetes clients and the
 * archive code rely on. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "mxpc/http.h"
#include "mxpc/interrupt.h"

static int notified;
static void on_notify(int signo) { notified = signo; }

static void signal_sets_the_flag_and_tells(void **state)
{
    (void)state;
    mxpc_interrupt_reset();
    mxpc_interrupt_set_notify(on_notify);
    mxpc_interrupt_install();
    assert_int_equal(mxpc_interrupted(), 0);
    raise(SIGTERM);
    assert_int_equal(mxpc_interrupted(), SIGTERM);
    assert_int_equal(notified, SIGTERM);
    mxpc_interrupt_reset();
    assert_int_equal(mxpc_interrupted(), 0);
    mxpc_interrupt_set_notify(NULL);
    signal(SIGTERM, SIG_DFL);
}

static void a_deferred_signal_is_recorded_then_raised(void **state)
{
    (void)state;
    mxpc_interrupt_reset();
    assert_int_equal(mxpc_interrupt_defer(1), 0);
    mxpc_interrupt_raise(SIGINT);
    assert_int_equal(mxpc_interrupted(), 0);
    assert_int_equal(mxpc_interrupt_signal(), SIGINT);
    assert_int_equal(mxpc_interrupt_defer(0), 1);
    assert_int_equal(mxpc_interrupted(), SIGINT);
    mxpc_interrupt_reset();
    assert_int_equal(mxpc_interrupt_signal(), 0);
}

static int ticks;
static void count_tick(void *ud)
{
    (void)ud;
    ticks++;
    mxpc_tick(); /* never from inside itself */
}

static void the_ticker_runs_at_most_every_tenth_of_a_second(void **state)
{
    (void)state;
    mxpc_interrupt_reset();
    ticks = 0;
    mxpc_tick_set(count_tick, NULL);
    double end = mxpc_monotonic() + 0.35;
    while (mxpc_monotonic() < end)
        mxpc_tick();
    assert_in_range(ticks, 3, 4);
    /* not while a signal is pending */
    mxpc_interrupt_raise(SIGINT);
    struct timespec ts = {0, 150 * 1000000L};
    nanosleep(&ts, NULL);
    int before = ticks;
    mxpc_tick();
    assert_int_equal(ticks, before);
    mxpc_interrupt_reset();
    mxpc_tick_set(NULL, NULL);
    mxpc_tick();
    assert_int_equal(ticks, before);
}

static void retries_follow_one_policy(void **state)
{
    (void)state;
    assert_true(mxpc_http_retryable(CURLE_OK, 503));
    assert_true(mxpc_http_retryable(CURLE_OK, 429));
    assert_false(mxpc_http_retryable(CURLE_OK, 404));
    assert_true(mxpc_http_retryable(CURLE_COULDNT_CONNECT, 0));
    assert_false(mxpc_http_retryable(CURLE_PEER_FAILED_VERIFICATION, 0));
    assert_false(mxpc_http_retryable(CURLE_ABORTED_BY_CALLBACK, 0));
    assert_true(mxpc_http_tls_problem(CURLE_PEER_FAILED_VERIFICATION));
    assert_false(mxpc_http_tls_problem(CURLE_COULDNT_CONNECT));
    int differ = 0;
    long first = mxpc_http_backoff_ms(0);
    for (int attempt = 0; attempt < 8; attempt++) {
        long cap = MXPC_HTTP_BACKOFF_MS << (attempt < 5 ? attempt : 5);
        for (int i = 0; i < 50; i++) {
            long ms = mxpc_http_backoff_ms(attempt);
            assert_in_range(ms, cap / 2, cap);
            differ |= attempt == 0 && ms != first;
        }
    }
    assert_true(differ); /* jittered */
}

static void cleanup_lets_a_signal_wait_for_the_grace_period(void **state)
{
    (void)state;
    struct mxpc_http *h = mxpc_http_new();
    assert_non_null(h);
    mxpc_interrupt_reset();
    assert_false(mxpc_http_interrupted(h));
    mxpc_interrupt_raise(SIGINT);
    assert_true(mxpc_http_interrupted(h));
    assert_int_equal(mxpc_http_cleanup(h, 1), 0);
    assert_false(mxpc_http_interrupted(h)); /* within MXPC_HTTP_CLEANUP_GRACE_MS */
    assert_int_equal(mxpc_http_cleanup(h, 0), 1);
    assert_true(mxpc_http_interrupted(h));
    assert_int_equal(mxpc_http_sleep_ms(5000), -1); /* at once */
    mxpc_interrupt_reset();
    assert_int_equal(mxpc_http_sleep_ms(10), 0);
    mxpc_http_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signal_sets_the_flag_and_tells),
        cmocka_unit_test(a_deferred_signal_is_recorded_then_raised),
        cmocka_unit_test(the_ticker_runs_at_most_every_tenth_of_a_second),
        cmocka_unit_test(retries_follow_one_policy),
        cmocka_unit_test(cleanup_lets_a_signal_wait_for_the_grace_period),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
