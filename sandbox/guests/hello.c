/* hello: the smallest C guest (wasi-libc stdio). */
#include <stdio.h>

int main(void) {
    puts("hello, world");
    return 0;
}
