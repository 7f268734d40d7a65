#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *text;
    size_t at;
    char *error;
    size_t error_size;
    int failed;
} fj_parser;

static void fail(fj_parser *p, const char *what) {
    if (p->failed) return;
    p->failed = 1;
    int line = 1, column = 1;
    for (size_t i = 0; i < p->at && p->text[i]; i++) {
        if (p->text[i] == '\n') { line++; column = 1; } else { column++; }
    }
    snprintf(p->error, p->error_size, "line %d, column %d: %s", line, column, what);
}

static void skip_space(fj_parser *p) {
    for (;;) {
        char c = p->text[p->at];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') p->at++;
        else return;
    }
}

static fj_node *make(fj_type type) {
    fj_node *node = calloc(1, sizeof(fj_node));
    if (node) node->type = type;
    return node;
}

static fj_node *parse_value(fj_parser *p, int depth);

static void append_utf8(char *out, size_t *n, unsigned code) {
    if (code < 0x80) {
        out[(*n)++] = (char)code;
    } else if (code < 0x800) {
        out[(*n)++] = (char)(0xC0 | (code >> 6));
        out[(*n)++] = (char)(0x80 | (code & 0x3F));
    } else {
        out[(*n)++] = (char)(0xE0 | (code >> 12));
        out[(*n)++] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (code & 0x3F));
    }
}

static char *parse_string(fj_parser *p) {
    if (p->text[p->at] != '"') { fail(p, "expected a string"); return NULL; }
    p->at++;
    size_t start = p->at, length = 0;
    while (p->text[start + length] && p->text[start + length] != '"') {
        if (p->text[start + length] == '\\' && p->text[start + length + 1]) length++;
        length++;
    }
    char *out = malloc(length * 3 + 1);
    if (!out) { fail(p, "out of memory"); return NULL; }
    size_t n = 0;
    for (;;) {
        char c = p->text[p->at];
        if (c == '\0') { fail(p, "unterminated string"); free(out); return NULL; }
        if (c == '"') { p->at++; break; }
        if ((unsigned char)c < 0x20) { fail(p, "control character in a string"); free(out); return NULL; }
        if (c != '\\') { out[n++] = c; p->at++; continue; }
        char e = p->text[p->at + 1];
        p->at += 2;
        switch (e) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned code = 0;
            for (int i = 0; i < 4; i++) {
                char h = p->text[p->at + i];
                code <<= 4;
                if (h >= '0' && h <= '9') code |= (unsigned)(h - '0');
                else if (h >= 'a' && h <= 'f') code |= (unsigned)(h - 'a' + 10);
                else if (h >= 'A' && h <= 'F') code |= (unsigned)(h - 'A' + 10);
                else { fail(p, "bad \\u escape"); free(out); return NULL; }
            }
            p->at += 4;
            append_utf8(out, &n, code);
            break;
        }
        default: fail(p, "unknown escape in a string"); free(out); return NULL;
        }
    }
    out[n] = '\0';
    return out;
}

static int add_item(fj_node *node, fj_node *item, char *key) {
    fj_node **items = realloc(node->items, sizeof(fj_node *) * (size_t)(node->count + 1));
    if (!items) return 0;
    node->items = items;
    if (node->type == FJ_OBJECT) {
        char **keys = realloc(node->keys, sizeof(char *) * (size_t)(node->count + 1));
        if (!keys) return 0;
        node->keys = keys;
        node->keys[node->count] = key;
    }
    node->items[node->count++] = item;
    return 1;
}

static fj_node *parse_container(fj_parser *p, int depth, int object) {
    fj_node *node = make(object ? FJ_OBJECT : FJ_ARRAY);
    if (!node) { fail(p, "out of memory"); return NULL; }
    p->at++;
    skip_space(p);
    if (p->text[p->at] == (object ? '}' : ']')) { p->at++; return node; }
    for (;;) {
        char *key = NULL;
        skip_space(p);
        if (object) {
            key = parse_string(p);
            if (!key) { fj_free(node); return NULL; }
            skip_space(p);
            if (p->text[p->at] != ':') { fail(p, "expected ':' after an object key"); free(key); fj_free(node); return NULL; }
            p->at++;
        }
        fj_node *item = parse_value(p, depth + 1);
        if (!item) { free(key); fj_free(node); return NULL; }
        if (!add_item(node, item, key)) { fail(p, "out of memory"); free(key); fj_free(item); fj_free(node); return NULL; }
        skip_space(p);
        char c = p->text[p->at];
        if (c == ',') { p->at++; continue; }
        if (c == (object ? '}' : ']')) { p->at++; return node; }
        fail(p, object ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array");
        fj_free(node);
        return NULL;
    }
}

static fj_node *parse_value(fj_parser *p, int depth) {
    if (depth > 64) { fail(p, "nested too deeply"); return NULL; }
    skip_space(p);
    const char *s = p->text + p->at;
    if (*s == '{') return parse_container(p, depth, 1);
    if (*s == '[') return parse_container(p, depth, 0);
    if (*s == '"') {
        char *string = parse_string(p);
        if (!string) return NULL;
        fj_node *node = make(FJ_STRING);
        if (!node) { free(string); fail(p, "out of memory"); return NULL; }
        node->string = string;
        return node;
    }
    if (strncmp(s, "true", 4) == 0 || strncmp(s, "false", 5) == 0) {
        fj_node *node = make(FJ_BOOL);
        if (!node) { fail(p, "out of memory"); return NULL; }
        node->number = *s == 't';
        p->at += *s == 't' ? 4 : 5;
        return node;
    }
    if (strncmp(s, "null", 4) == 0) {
        p->at += 4;
        fj_node *node = make(FJ_NULL);
        if (!node) fail(p, "out of memory");
        return node;
    }
    if (*s == '-' || (*s >= '0' && *s <= '9')) {
        char *end = NULL;
        double value = strtod(s, &end);
        if (end == s) { fail(p, "bad number"); return NULL; }
        p->at += (size_t)(end - s);
        fj_node *node = make(FJ_NUMBER);
        if (!node) { fail(p, "out of memory"); return NULL; }
        node->number = value;
        return node;
    }
    fail(p, *s ? "unexpected character" : "unexpected end of text");
    return NULL;
}

fj_node *fj_parse(const char *text, char *error, size_t error_size) {
    fj_parser p = { text, 0, error, error_size, 0 };
    fj_node *root = parse_value(&p, 0);
    if (!root) return NULL;
    skip_space(&p);
    if (p.text[p.at] != '\0') {
        fail(&p, "text after the end of the document");
        fj_free(root);
        return NULL;
    }
    return root;
}

void fj_free(fj_node *node) {
    if (!node) return;
    for (int i = 0; i < node->count; i++) {
        fj_free(node->items[i]);
        if (node->keys) free(node->keys[i]);
    }
    free(node->items);
    free(node->keys);
    free(node->string);
    free(node);
}

const fj_node *fj_get(const fj_node *object, const char *key) {
    if (!object || object->type != FJ_OBJECT) return NULL;
    for (int i = 0; i < object->count; i++) {
        if (strcmp(object->keys[i], key) == 0) return object->items[i];
    }
    return NULL;
}

const fj_node *fj_at(const fj_node *array, int i) {
    if (!array || array->type != FJ_ARRAY || i < 0 || i >= array->count) return NULL;
    return array->items[i];
}

int fj_length(const fj_node *array) {
    return array && array->type == FJ_ARRAY ? array->count : 0;
}

const char *fj_string(const fj_node *object, const char *key, const char *fallback) {
    const fj_node *node = fj_get(object, key);
    return node && node->type == FJ_STRING ? node->string : fallback;
}

int fj_contains(const fj_node *array, const char *s) {
    for (int i = 0; i < fj_length(array); i++) {
        const fj_node *item = array->items[i];
        if (item->type == FJ_STRING && strcmp(item->string, s) == 0) return 1;
    }
    return 0;
}
