/* pread: random access on a type-3 channel. Prints, one per line,
 * "<offset>+<count>: <ret> [<bytes>]" for a few pread calls on /dev/input,
 * then its size from fstat, then what lseek on stdin (sequential) gives. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void at(int fd, off_t offset, size_t count) {
    char buf[64] = {0};
    ssize_t n = pread(fd, buf, count, offset);
    if (n < 0)
        printf("%lld+%zu: -1 %s\n", (long long)offset, count, strerror(errno));
    else
        printf("%lld+%zu: %zd [%.*s]\n", (long long)offset, count, n, (int)n, buf);
}

int main(void) {
    int fd = open("/dev/input", O_RDONLY);
    if (fd < 0) {
        printf("open: %s\n", strerror(errno));
        return 1;
    }
    at(fd, 6, 4);
    at(fd, 0, 3);
    at(fd, 8, 10); /* clipped at the end */
    at(fd, 2, 1);
    at(fd, 10, 5); /* exactly at the end */
    struct stat st;
    if (fstat(fd, &st) == 0)
        printf("size %lld\n", (long long)st.st_size);
    off_t pos = lseek(0, 2, SEEK_SET);
    printf("lseek stdin: %lld %s\n", (long long)pos, pos < 0 ? strerror(errno) : "");
    return 0;
}
