/* quota: writes 1000-byte blocks to /dev/output until a write fails, then
 * prints "wrote <bytes> in <calls> calls; then errno <n> (<EDQUOT or name>)".
 * The channel's put_size is meant to end it: the write crossing the quota is
 * short, the next one fails with EDQUOT. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    int fd = open("/dev/output", O_WRONLY);
    if (fd < 0) {
        printf("open: %s\n", strerror(errno));
        return 1;
    }
    static char block[1000];
    memset(block, 'x', sizeof block);
    unsigned long long total = 0, calls = 0;
    for (int i = 0; i < 1000000; i++) {
        ssize_t n = write(fd, block, sizeof block);
        if (n < 0) {
            int e = errno;
            printf("wrote %llu in %llu calls; then errno %d (%s)\n", total, calls, e,
                   e == EDQUOT ? "EDQUOT" : strerror(e));
            return 0;
        }
        total += (unsigned long long)n;
        calls++;
    }
    printf("wrote %llu in %llu calls; never refused\n", total, calls);
    return 2;
}
