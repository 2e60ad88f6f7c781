/* tarread: prints the file argv[1] (default /opt/img/hello.txt, a tar image
 * mounted by the NVRAM [fstab]) with stdio, then tries to open it for
 * writing and prints the errno ("write: <n> <name>"). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/opt/img/hello.txt";
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("fopen %s: %s\n", path, strerror(errno));
        return 1;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
    int fd = open(path, O_WRONLY);
    printf("write: %d %s\n", fd < 0 ? errno : 0, fd < 0 && errno == EROFS ? "EROFS" : "");
    return 0;
}
