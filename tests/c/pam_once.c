/*
 * pam_once: one pam_authenticate() in this process, answering prompts with
 * lines from stdin, then report how many threads the process has. Used to
 * prove that the module leaves no thread (HTTP runtime) behind after a PAM
 * call that went over the network: sshd forks after PAM, and a stray
 * thread there is a bug.
 *
 *   pam_once SERVICE USER   -> prints "threads-before N", "threads-after N",
 *                              "result N (text)"; exit 0 on PAM_SUCCESS.
 *
 * PAM_ONCE_RHOST, when set, becomes PAM_RHOST (as sshd sets it).
 */
#include <dirent.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_threads(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* Prints a PAM message on one line (newlines shown as " | "), so the test
 * reads each prompt or message as one line. */
static void print_one_line(const char *tag, const char *text) {
    fputs(tag, stdout);
    for (const char *p = text; *p; p++) {
        if (*p == '\n') fputs(" | ", stdout);
        else putchar(*p);
    }
    putchar('\n');
    fflush(stdout);
}

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    (void)data;
    struct pam_response *r = calloc((size_t)n, sizeof(*r));
    if (!r) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        const char *text = msg[i]->msg ? msg[i]->msg : "";
        switch (msg[i]->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
        case PAM_PROMPT_ECHO_ON: {
            char line[512];
            print_one_line("prompt: ", text);
            if (!fgets(line, sizeof line, stdin)) line[0] = '\0';
            line[strcspn(line, "\n")] = '\0';
            r[i].resp = strdup(line);
            break;
        }
        default:
            print_one_line("message: ", text);
        }
    }
    *resp = r;
    return PAM_SUCCESS;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: pam_once SERVICE USER\n");
        return 2;
    }
    struct pam_conv c = {conv, NULL};
    pam_handle_t *h = NULL;
    printf("threads-before %d\n", count_threads());
    int rc = pam_start(argv[1], argv[2], &c, &h);
    const char *rhost = getenv("PAM_ONCE_RHOST");
    if (rc == PAM_SUCCESS && rhost) rc = pam_set_item(h, PAM_RHOST, rhost);
    if (rc == PAM_SUCCESS) rc = pam_authenticate(h, 0);
    printf("threads-after %d\n", count_threads());
    printf("result %d (%s)\n", rc, pam_strerror(h, rc));
    pam_end(h, rc);
    return rc == PAM_SUCCESS ? 0 : 1;
}
