/* wc: counts the lines, words and bytes of argv[1] (default /dev/stdin),
 * printed as wc(1) does: "<lines> <words> <bytes>\n". Exit code 1 if the
 * file cannot be opened or read (the reason on stderr). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/dev/stdin";
    int fd = strcmp(path, "/dev/stdin") == 0 ? 0 : open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "wc: %s: %s\n", path, strerror(errno));
        return 1;
    }
    static unsigned char buf[65536];
    unsigned long long lines = 0, words = 0, bytes = 0;
    int in_word = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            fprintf(stderr, "wc: %s: %s\n", path, strerror(errno));
            return 1;
        }
        if (n == 0)
            break;
        bytes += (unsigned long long)n;
        for (ssize_t i = 0; i < n; i++) {
            unsigned char c = buf[i];
            if (c == '\n')
                lines++;
            if (isspace(c)) {
                in_word = 0;
            } else if (!in_word) {
                in_word = 1;
                words++;
            }
        }
    }
    printf("%llu %llu %llu\n", lines, words, bytes);
    return 0;
}
