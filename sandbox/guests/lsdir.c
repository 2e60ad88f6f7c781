/* lsdir: lists a directory (argv[1], default /dev/in) with opendir/readdir,
 * one name per line, in the order readdir gives them. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/dev/in";
    DIR *d = opendir(path);
    if (!d) {
        printf("opendir %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        printf("%s\n", e->d_name);
    closedir(d);
    return 0;
}
