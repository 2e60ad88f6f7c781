/* args: prints argc, each argv[i] in brackets and FOO from the environment;
 * exits with argc (the report's user code). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    printf("argc %d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d] [%s]\n", i, argv[i]);
    const char *name = "FOO";
    const char *value = getenv(name);
    printf("%s=%s\n", name, value ? value : "(unset)");
    return argc;
}
