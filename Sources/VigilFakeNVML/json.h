/* A small JSON reader for the fake NVML library's scenario files: objects, arrays, strings (with
 * escapes, \u as UTF-8), numbers, true, false, null. Errors carry the line and column. */
#ifndef VIGIL_FAKE_JSON_H
#define VIGIL_FAKE_JSON_H

#include <stddef.h>

typedef enum { FJ_NULL, FJ_BOOL, FJ_NUMBER, FJ_STRING, FJ_ARRAY, FJ_OBJECT } fj_type;

typedef struct fj_node {
    fj_type type;
    double number;          /* FJ_NUMBER, FJ_BOOL (0/1) */
    char *string;           /* FJ_STRING */
    struct fj_node **items; /* FJ_ARRAY, FJ_OBJECT values */
    char **keys;            /* FJ_OBJECT keys */
    int count;
} fj_node;

/* Parses text; on failure returns NULL and writes "line L, column C: what" into error. */
fj_node *fj_parse(const char *text, char *error, size_t error_size);
void fj_free(fj_node *node);

/* The member named key of an object, or NULL. */
const fj_node *fj_get(const fj_node *object, const char *key);
/* Item i of an array, or NULL. */
const fj_node *fj_at(const fj_node *array, int i);
/* The array's length, 0 for anything else. */
int fj_length(const fj_node *array);
/* A string member, or fallback. */
const char *fj_string(const fj_node *object, const char *key, const char *fallback);
/* Whether an array of strings holds s. */
int fj_contains(const fj_node *array, const char *s);

#endif
