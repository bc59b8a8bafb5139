/* Kubernetes client configuration: kubeconfig files (tests/k8s/fixtures),
 * KUBECONFIG lists, exec plugins, the in-cluster service account, and the
 * errors for broken configurations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "memory_limit.h"

#include "mxpc/k8s.h"
#include "mxpc/log.h"

#define FIX MXPC_K8S_FIXTURES

static struct mxpc_k8s_config cfg;
static struct mxpc_k8s_error err;

static int setup(void **state)
{
    (void)state;
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    unsetenv("MXPC_K8S_SA_DIR");
    setenv("HOME", "/nonexistent-home", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mxpc_k8s_config_free(&cfg);
    mxpc_redact_clear();
    return 0;
}

static int load(const char *kubeconfig, const char *context)
{
    struct mxpc_k8s_load_options o = {.kubeconfig = kubeconfig, .context = context};
    return mxpc_k8s_config_load(&cfg, &o, &err);
}

static void assert_contains(const char *s, const char *sub)
{
    if (!s || !strstr(s, sub))
        fail_msg("expected \"%s\" to contain \"%s\"", s ? s : "(null)", sub);
}

static void assert_masked(const char *secret)
{
    char *out = mxpc_redact(secret);
    assert_string_equal(out, "***");
    free(out);
}

static void current_context_with_token_and_relative_ca(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/kubeconfig.yaml", NULL), 0);
    assert_string_equal(cfg.context, "token");
    assert_string_equal(cfg.cluster, "file-ca");
    assert_string_equal(cfg.user, "token-user");
    assert_string_equal(cfg.server, "https://k8s.example.test:6443"); /* trailing '/' dropped */
    assert_string_equal(cfg.namespace, "apps");
    assert_string_equal(cfg.ca_file, FIX "/certs/ca.crt");             /* relative to the kubeconfig */
    assert_null(cfg.ca_data.data);
    assert_string_equal(cfg.tls_server_name, "kubernetes.default.svc");
    assert_string_equal(cfg.token, "fixture-token-abcdef");
    assert_string_equal(cfg.auth, "token");
    assert_string_equal(cfg.source, FIX "/kubeconfig.yaml");
    assert_masked("fixture-token-abcdef");
}

static void explicit_context_with_inline_certificates(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/kubeconfig.yaml", "cert"), 0);
    assert_string_equal(cfg.context, "cert");
    assert_string_equal(cfg.server, "https://10.0.0.1:443");
    assert_string_equal(cfg.namespace, "mendix");
    assert_null(cfg.ca_file);
    assert_int_equal(cfg.ca_data.len, strlen("INLINE-CA-PEM"));
    assert_memory_equal(cfg.ca_data.data, "INLINE-CA-PEM", cfg.ca_data.len);
    assert_int_equal(cfg.cert_data.len, strlen("INLINE-CERT-PEM"));
    assert_memory_equal(cfg.cert_data.data, "INLINE-CERT-PEM", cfg.cert_data.len);
    assert_memory_equal(cfg.key_data.data, "INLINE-KEY-PEM-secret", cfg.key_data.len);
    assert_null(cfg.token);
    assert_string_equal(cfg.auth, "client certificate");
    assert_masked("INLINE-KEY-PEM-secret");
}

static void token_file_is_read_and_trimmed(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/kubeconfig.yaml", "token-file"), 0);
    assert_string_equal(cfg.token_file, FIX "/certs/user.token");
    assert_string_equal(cfg.token, "token-from-file-1234");
    assert_string_equal(cfg.auth, "token file");
    assert_null(cfg.namespace); /* the client falls back to "default" */
}

static void basic_auth_and_insecure(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/kubeconfig.yaml", "basic"), 0);
    assert_string_equal(cfg.username, "admin");
    assert_string_equal(cfg.password, "fixture-password-xyz");
    assert_int_equal(cfg.insecure, 1);
    assert_string_equal(cfg.auth, "basic");
    assert_masked("fixture-password-xyz");
}

static void exec_plugin_gives_the_token(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/kubeconfig.yaml", "exec"), 0);
    assert_string_equal(cfg.token, "exec-token-from-plugin");
    assert_string_equal(cfg.auth, "exec");
    assert_masked("exec-token-from-plugin");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A plugin that never answers (and ignores SIGTERM) is stopped after
 * MXPC_EXEC_TIMEOUT seconds with an error naming it. */
static void hanging_exec_plugin_times_out_and_is_killed(void **state)
{
    (void)state;
    char pid_file[] = "/tmp/mxpc-plugin-pid-XXXXXX";
    int fd = mkstemp(pid_file);
    assert_true(fd >= 0);
    close(fd);
    setenv("PLUGIN_PID_FILE", pid_file, 1);
    setenv("MXPC_EXEC_TIMEOUT", "1", 1);
    double t0 = now_s();
    int rc = load(FIX "/kubeconfig.yaml", "exec-hanging");
    double took = now_s() - t0;
    unsetenv("MXPC_EXEC_TIMEOUT");
    unsetenv("PLUGIN_PID_FILE");
    assert_int_equal(rc, -1);
    assert_string_equal(err.code, "timeout");
    assert_contains(err.message, "credential plugin \"./plugin.sh\"");
    assert_contains(err.message, "did not finish within 1 s and was stopped");
    assert_contains(err.hint, "MXPC_EXEC_TIMEOUT");
    if (took < 0.9 || took > 8)
        fail_msg("gave up after %.1f s, expected about 1 s (+2 s for SIGKILL)", took);
    FILE *f = fopen(pid_file, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    unlink(pid_file);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), -1); /* gone, and reaped */
    assert_null(cfg.server);
}

static void exec_timeout_must_be_seconds(void **state)
{
    (void)state;
    setenv("MXPC_EXEC_TIMEOUT", "soon", 1);
    int rc = load(FIX "/kubeconfig.yaml", "exec");
    unsetenv("MXPC_EXEC_TIMEOUT");
    assert_int_equal(rc, -1);
    assert_string_equal(err.code, "config");
    assert_contains(err.message, "MXPC_EXEC_TIMEOUT=soon is not a number of seconds");
}

static void failing_exec_plugin_names_plugin_and_hint(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/kubeconfig.yaml", "exec-failing"), -1);
    assert_string_equal(err.code, "config");
    assert_contains(err.message, "credential plugin \"./plugin.sh\"");
    assert_contains(err.message, "exit status 3");
    assert_contains(err.message, "plugin: not logged in");
    assert_string_equal(err.hint, "install the fixture plugin");
    assert_null(cfg.server); /* nothing left half-filled */
}

static void missing_context_names_file_and_context(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/kubeconfig.yaml", "staging"), -1);
    assert_string_equal(err.code, "config");
    assert_string_equal(err.message, "context \"staging\" not found in kubeconfig " FIX "/kubeconfig.yaml");
    assert_contains(err.hint, "token, token-file, cert, basic");
}

static void missing_user_and_auth_provider(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/kubeconfig.yaml", "dangling-user"), -1);
    assert_contains(err.message, "user \"no-such-user\" of context \"dangling-user\" not found");
    assert_int_equal(load(FIX "/kubeconfig.yaml", "auth-provider"), -1);
    assert_contains(err.message, "auth-provider, which is not supported");
}

static void no_current_context_lists_contexts(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/no-current.yaml", NULL), -1);
    assert_string_equal(err.message, "kubeconfig " FIX "/no-current.yaml has no current-context");
    assert_contains(err.hint, "one, two");
    assert_int_equal(load(FIX "/no-current.yaml", "two"), 0);
    assert_string_equal(cfg.token, "no-current-token");
}

static void malformed_yaml_reports_the_line(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/malformed.yaml", NULL), -1);
    assert_string_equal(err.code, "config");
    assert_contains(err.message, "kubeconfig " FIX "/malformed.yaml is not valid YAML: line 8, column");
    assert_contains(err.message, "flow sequence");
}

static void missing_file_is_an_error(void **state)
{
    (void)state;
    assert_int_equal(load(FIX "/does-not-exist.yaml", NULL), -1);
    assert_string_equal(err.message, "cannot read kubeconfig " FIX "/does-not-exist.yaml: No such file or directory");
}

static void kubeconfig_list_merges_first_wins(void **state)
{
    (void)state;
    /* a missing file in the list is skipped, as kubectl does */
    setenv("KUBECONFIG", FIX "/missing.yaml:" FIX "/list-first.yaml:" FIX "/list-second.yaml", 1);
    assert_int_equal(load(NULL, NULL), 0);
    assert_string_equal(cfg.source, FIX "/list-first.yaml:" FIX "/list-second.yaml");
    assert_string_equal(cfg.context, "from-second");            /* current-context of the first file */
    assert_string_equal(cfg.namespace, "second-ns");            /* the context from the second file */
    assert_string_equal(cfg.server, "https://first.example.test"); /* cluster "shared": first file wins */
    assert_string_equal(cfg.token, "second-token");
    mxpc_k8s_config_free(&cfg);
    assert_int_equal(load(NULL, "from-first"), 0);
    assert_string_equal(cfg.token, "first-token");
    /* an explicit file beats $KUBECONFIG */
    mxpc_k8s_config_free(&cfg);
    assert_int_equal(load(FIX "/kubeconfig.yaml", NULL), 0);
    assert_string_equal(cfg.context, "token");
}

static void in_cluster_service_account(void **state)
{
    (void)state;
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    setenv("MXPC_K8S_SA_DIR", FIX "/sa", 1);
    /* no kubeconfig anywhere: the service account is used */
    assert_int_equal(load(NULL, NULL), 0);
    assert_string_equal(cfg.server, "https://10.96.0.1:443");
    assert_string_equal(cfg.token, "sa-token-0001");
    assert_string_equal(cfg.token_file, FIX "/sa/token");
    assert_string_equal(cfg.ca_file, FIX "/sa/ca.crt");
    assert_string_equal(cfg.namespace, "mendix");
    assert_null(cfg.context);
    assert_string_equal(cfg.source, "in-cluster service account (" FIX "/sa)");
    mxpc_k8s_config_free(&cfg);
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    assert_int_equal(load(NULL, NULL), 0);
    assert_string_equal(cfg.server, "https://[fd00::1]:443");
    mxpc_k8s_config_free(&cfg);
    setenv("MXPC_K8S_SA_DIR", FIX "/certs", 1);
    assert_int_equal(load(NULL, NULL), -1);
    assert_contains(err.message, "cannot read the service account token " FIX "/certs/token");
}

/* A kubeconfig in a new directory whose user reads its token from token_file
 * (when NULL: from DIR/token, made a FIFO without a writer). The test's
 * address space is limited (not under ASan) and an alarm set, so a token read
 * whole or a FIFO waited on fails the test instead of the machine. */
static int load_token_file(const char *token_file, char *dir, size_t dirlen)
{
    snprintf(dir, dirlen, "/tmp/mxpc-kc-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[96], fifo[96];
    snprintf(fifo, sizeof fifo, "%s/token", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    snprintf(path, sizeof path, "%s/config", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
               "clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n"
               "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"
               "users:\n- name: u\n  user:\n    tokenFile: %s\n", token_file ? token_file : "token");
    fclose(f);
    alarm(20);
    int rc = load(path, NULL);
    alarm(0);
    unlink(path);
    unlink(fifo);
    rmdir(dir);
    return rc;
}

static void token_file_that_never_ends_or_blocks(void **state)
{
    (void)state;
    char dir[32];
    assert_int_equal(load_token_file("/dev/zero", dir, sizeof dir), -1);
    assert_contains(err.message, "cannot read tokenFile /dev/zero: it is a character device, not a regular file");
    assert_int_equal(load_token_file(NULL, dir, sizeof dir), -1);
    assert_contains(err.message, "/token: it is a FIFO, not a regular file");
    /* the in-cluster token too */
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    snprintf(dir, sizeof dir, "/tmp/mxpc-sa-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char fifo[96];
    snprintf(fifo, sizeof fifo, "%s/token", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    setenv("MXPC_K8S_SA_DIR", dir, 1);
    alarm(20);
    int rc = load(NULL, NULL);
    alarm(0);
    unlink(fifo);
    rmdir(dir);
    assert_int_equal(rc, -1);
    assert_contains(err.message, "cannot read the service account token");
    assert_contains(err.message, "it is a FIFO, not a regular file");
}

static void nothing_configured(void **state)
{
    (void)state;
    assert_int_equal(load(NULL, NULL), -1);
    assert_string_equal(err.code, "config");
    assert_contains(err.message, "no Kubernetes configuration found: /nonexistent-home/.kube/config does not exist");
    assert_contains(err.hint, "KUBECONFIG");
}

static void base64_decoding(void **state)
{
    (void)state;
    size_t len;
    unsigned char *out = mxpc_base64_decode("aGVs\nbG8=", 9, &len);
    assert_non_null(out);
    assert_int_equal(len, 5);
    assert_string_equal((char *)out, "hello");
    free(out);
    assert_null(mxpc_base64_decode("aGVsbG8=x", 9, &len)); /* data after padding */
    assert_null(mxpc_base64_decode("a*==", 4, &len));
    assert_null(mxpc_base64_decode("a", 1, &len));
}

static void status_codes(void **state)
{
    (void)state;
    assert_string_equal(mxpc_k8s_status_code(401), "unauthorized");
    assert_string_equal(mxpc_k8s_status_code(403), "forbidden");
    assert_string_equal(mxpc_k8s_status_code(404), "not_found");
    assert_string_equal(mxpc_k8s_status_code(409), "conflict");
    assert_string_equal(mxpc_k8s_status_code(422), "invalid");
    assert_string_equal(mxpc_k8s_status_code(500), "k8s");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    limit_memory(2048); /* an endless read must fail, not fill the machine */
    const struct CMUnitTest tests[] = {
        T(current_context_with_token_and_relative_ca),
        T(token_file_that_never_ends_or_blocks),
        T(explicit_context_with_inline_certificates),
        T(token_file_is_read_and_trimmed),
        T(basic_auth_and_insecure),
        T(exec_plugin_gives_the_token),
        T(failing_exec_plugin_names_plugin_and_hint),
        T(hanging_exec_plugin_times_out_and_is_killed),
        T(exec_timeout_must_be_seconds),
        T(missing_context_names_file_and_context),
        T(missing_user_and_auth_provider),
        T(no_current_context_lists_contexts),
        T(malformed_yaml_reports_the_line),
        T(missing_file_is_an_error),
        T(kubeconfig_list_merges_first_wins),
        T(in_cluster_service_account),
        T(nothing_configured),
        T(base64_decoding),
        T(status_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
