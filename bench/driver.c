/*
 * Benchmark driver: one pam_start/pam_authenticate/pam_end per line of a
 * "USER CODE" file, timing each with CLOCK_MONOTONIC. The conversation
 * answers every prompt with that line's code. Prints one line per login:
 * "<nanoseconds> <pam result code>". Exit status 1 if any login failed.
 *
 *   driver auth SERVICE FILE
 *   driver dlopen MODULE N     -> one line per dlopen+dlclose, in ns
 */
#include <dlfcn.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *answer;

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    (void)data;
    struct pam_response *r = calloc((size_t)n, sizeof(*r));
    if (!r) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++)
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
            r[i].resp = strdup(answer);
    *resp = r;
    return PAM_SUCCESS;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "dlopen") == 0) {
        int n = atoi(argv[3]);
        for (int i = 0; i < n; i++) {
            long long t = now_ns();
            void *h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
            if (!h) {
                fprintf(stderr, "dlopen %s: %s\n", argv[2], dlerror());
                return 1;
            }
            dlclose(h);
            printf("%lld\n", now_ns() - t);
        }
        return 0;
    }
    if (argc != 4 || strcmp(argv[1], "auth") != 0) {
        fprintf(stderr, "usage: driver auth SERVICE FILE | driver dlopen MODULE N\n");
        return 2;
    }
    FILE *f = fopen(argv[3], "r");
    if (!f) {
        perror(argv[3]);
        return 2;
    }
    char user[256], code[256];
    int failed = 0;
    struct pam_conv c = {conv, NULL};
    while (fscanf(f, "%255s %255s", user, code) == 2) {
        answer = code;
        pam_handle_t *h = NULL;
        long long t = now_ns();
        int rc = pam_start(argv[2], user, &c, &h);
        if (rc == PAM_SUCCESS) rc = pam_authenticate(h, PAM_SILENT);
        pam_end(h, rc);
        printf("%lld %d\n", now_ns() - t, rc);
        if (rc != PAM_SUCCESS) failed++;
    }
    fclose(f);
    if (failed) fprintf(stderr, "driver: %d login(s) failed\n", failed);
    return failed ? 1 : 0;
}
