/* cat: copies /dev/stdin to /dev/stdout with read/write. Exit code 0, or
 * the errno of a failed call. */
#include <errno.h>
#include <unistd.h>

int main(void) {
    static char buf[65536];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0)
            return 0;
        if (n < 0)
            return errno;
        for (ssize_t at = 0; at < n;) {
            ssize_t w = write(1, buf + at, (size_t)(n - at));
            if (w < 0)
                return errno;
            at += w;
        }
    }
}
