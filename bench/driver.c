/*
 * Benchmark driver for scripts/bench. Three modes:
 *
 *   driver auth SERVICE FILE
 *       One pam_start/pam_authenticate/pam_end per "USER CODE" line of FILE;
 *       the conversation answers every prompt with that line's code. Prints
 *       one line per login:
 *           <total ns> <pam_start ns> <pam_authenticate ns> <pam_end ns> <rc>
 *       (pam_start reads the service file and dlopens the module, pam_end
 *       dlcloses it). Exit status 1 if any login failed.
 *
 *   driver dlopen MODULE N
 *       N times dlopen(RTLD_NOW)+dlclose; one line per pair, in ns.
 *
 *   driver sink SOCKET OUT
 *       Binds a unix datagram socket (a syslog stand-in) and appends every
 *       datagram to OUT as one line, until killed.
 *
 * Times come from the raw clock_gettime system call on CLOCK_MONOTONIC, so
 * libfaketime (which freezes the modules' wall clock) cannot touch them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

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
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int do_dlopen(const char *path, int n) {
    for (int i = 0; i < n; i++) {
        long long t = now_ns();
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
            return 1;
        }
        dlclose(h);
        printf("%lld\n", now_ns() - t);
    }
    return 0;
}

static int do_sink(const char *path, const char *out) {
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(out);
        return 2;
    }
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (s < 0 || strlen(path) >= sizeof(a.sun_path)) {
        perror("socket");
        return 2;
    }
    strcpy(a.sun_path, path);
    unlink(path);
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror(path);
        return 2;
    }
    chmod(path, 0666);
    static char buf[65536];
    for (;;) {
        ssize_t n = recv(s, buf, sizeof(buf) - 1, 0);
        if (n < 0) continue;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0')) n--;
        buf[n++] = '\n';
        if (write(fd, buf, (size_t)n) < 0) return 2;
    }
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "dlopen") == 0) return do_dlopen(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "sink") == 0) return do_sink(argv[2], argv[3]);
    if (argc != 4 || strcmp(argv[1], "auth") != 0) {
        fprintf(stderr, "usage: driver auth SERVICE FILE | driver dlopen MODULE N | driver sink SOCKET OUT\n");
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
        long long t0 = now_ns();
        int rc = pam_start(argv[2], user, &c, &h);
        long long t1 = now_ns();
        if (rc == PAM_SUCCESS) rc = pam_authenticate(h, PAM_SILENT);
        long long t2 = now_ns();
        pam_end(h, rc);
        long long t3 = now_ns();
        printf("%lld %lld %lld %lld %d\n", t3 - t0, t1 - t0, t2 - t1, t3 - t2, rc);
        if (rc != PAM_SUCCESS) failed++;
    }
    fclose(f);
    if (failed) fprintf(stderr, "driver: %d login(s) failed\n", failed);
    return failed ? 1 : 0;
}
