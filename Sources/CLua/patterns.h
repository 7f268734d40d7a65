#ifndef VIGIL_CLUA_PATTERNS_H
#define VIGIL_CLUA_PATTERNS_H

/*
 * Lua's pattern functions (string.find, match, gmatch, gsub) with a budget. The standard library's matcher
 * backtracks inside C, where the count hook never fires: `string.find(("a"):rep(30000), ".-.-.-.-b")` would
 * run for hours with the script's instruction budget and deadline unable to stop it. This matcher follows
 * the language of patterns of the Lua 5.4 manual (section 6.4.1) and charges its steps to the same sandbox
 * budget as VM instructions (one instruction per CLUA_PATTERN_STEPS steps), and checks the deadline, so the
 * limits hold here too. Only the sandbox's states install it (clua_install_bounded_patterns).
 */

#include <ctype.h>
#include <lua.h>
#include <lauxlib.h>
#include <string.h>

#define CLUA_PATTERN_STEPS 16      /* matcher steps per instruction of budget */
#define CLUA_PATTERN_CHECK 65536   /* steps between deadline checks */
#define CLUA_PATTERN_CAPTURES 32
#define CLUA_PATTERN_DEPTH 200     /* nested matcher calls (as Lua's MAXCCALLS) */
#define CLUA_CAP_UNFINISHED (-1)
#define CLUA_CAP_POSITION (-2)

typedef struct clua_match {
    const char *src_init, *src_end, *p_end;
    lua_State *L;
    int depth;                     /* nested calls left */
    int level;                     /* captures open or closed */
    long steps;                    /* since the last charge */
    struct { const char *init; ptrdiff_t len; } capture[CLUA_PATTERN_CAPTURES];
} clua_match;

/* Declared in shim.h, which includes this file after them. */
static inline void clua_pattern_charge(clua_match *ms);

static inline void clua_step(clua_match *ms) {
    if (++ms->steps >= CLUA_PATTERN_CHECK) clua_pattern_charge(ms);
}

static int clua_class_end_error(clua_match *ms) {
    return luaL_error(ms->L, "malformed pattern (ends with '%%')");
}

/* The end of the single-character class starting at p. */
static const char *clua_class_end(clua_match *ms, const char *p) {
    char c = *p++;
    if (c == '%') {
        if (p >= ms->p_end) clua_class_end_error(ms);
        return p + 1;
    }
    if (c == '[') {
        if (p < ms->p_end && *p == '^') p++;
        do {   /* the first character may be ']' itself */
            if (p >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == '%') {
                if (p >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
                p++;
            }
        } while (p >= ms->p_end || *p != ']');
        return p + 1;
    }
    return p;
}

/* Whether c belongs to class %cl (cl a letter; its upper case is the complement). */
static int clua_in_class(int c, int cl) {
    int yes;
    switch (tolower(cl)) {
    case 'a': yes = isalpha(c); break;
    case 'c': yes = iscntrl(c); break;
    case 'd': yes = isdigit(c); break;
    case 'g': yes = isgraph(c); break;
    case 'l': yes = islower(c); break;
    case 'p': yes = ispunct(c); break;
    case 's': yes = isspace(c); break;
    case 'u': yes = isupper(c); break;
    case 'w': yes = isalnum(c); break;
    case 'x': yes = isxdigit(c); break;
    default: return cl == c;
    }
    if (isupper(cl)) yes = !yes;
    return yes != 0;
}

/* c against the set [..] from p (at '[') to ec (at ']'). */
static int clua_in_set(int c, const char *p, const char *ec) {
    int yes = 1;
    p++;
    if (*p == '^') {
        yes = 0;
        p++;
    }
    while (p < ec) {
        if (*p == '%') {
            p++;
            if (clua_in_class(c, (unsigned char)*p)) return yes;
            p++;
        } else if (p + 2 < ec && *(p + 1) == '-') {
            if ((unsigned char)*p <= c && c <= (unsigned char)*(p + 2)) return yes;
            p += 3;
        } else {
            if ((unsigned char)*p == c) return yes;
            p++;
        }
    }
    return !yes;
}

/* Whether the character at s matches the class from p to ep. */
static int clua_single(clua_match *ms, const char *s, const char *p, const char *ep) {
    if (s >= ms->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case '%': return clua_in_class(c, (unsigned char)*(p + 1));
    case '[': return clua_in_set(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *clua_do_match(clua_match *ms, const char *s, const char *p);

static int clua_capture_to_close(clua_match *ms) {
    int level = ms->level;
    for (level--; level >= 0; level--)
        if (ms->capture[level].len == CLUA_CAP_UNFINISHED) return level;
    return luaL_error(ms->L, "invalid pattern capture");
}

static const char *clua_start_capture(clua_match *ms, const char *s, const char *p, int what) {
    if (ms->level >= CLUA_PATTERN_CAPTURES) luaL_error(ms->L, "too many captures");
    ms->capture[ms->level].init = s;
    ms->capture[ms->level].len = what;
    ms->level++;
    const char *res = clua_do_match(ms, s, p);
    if (res == NULL) ms->level--;
    return res;
}

static const char *clua_end_capture(clua_match *ms, const char *s, const char *p) {
    int l = clua_capture_to_close(ms);
    ms->capture[l].len = s - ms->capture[l].init;
    const char *res = clua_do_match(ms, s, p);
    if (res == NULL) ms->capture[l].len = CLUA_CAP_UNFINISHED;
    return res;
}

/* %bxy: a balanced run from x to the matching y. */
static const char *clua_balance(clua_match *ms, const char *s, const char *p) {
    if (p + 1 >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p) return NULL;
    char open = *p, close = *(p + 1);
    int depth = 1;
    while (++s < ms->src_end) {
        clua_step(ms);
        if (*s == close) {
            if (--depth == 0) return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

/* %1 … %9: the same text as an earlier capture. */
static const char *clua_back_reference(clua_match *ms, const char *s, int l) {
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CLUA_CAP_UNFINISHED)
        luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    size_t len = (size_t)ms->capture[l].len;
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0) {
        ms->steps += (long)(len / 16);
        return s + len;
    }
    return NULL;
}

/* Greedy: take as many as match, then give back one at a time. */
static const char *clua_max_expand(clua_match *ms, const char *s, const char *p, const char *ep) {
    ptrdiff_t i = 0;
    while (clua_single(ms, s + i, p, ep)) {
        clua_step(ms);
        i++;
    }
    while (i >= 0) {
        clua_step(ms);
        const char *res = clua_do_match(ms, s + i, ep + 1);
        if (res) return res;
        i--;
    }
    return NULL;
}

/* Lazy: try the rest first, then take one more. */
static const char *clua_min_expand(clua_match *ms, const char *s, const char *p, const char *ep) {
    for (;;) {
        clua_step(ms);
        const char *res = clua_do_match(ms, s, ep + 1);
        if (res != NULL) return res;
        if (clua_single(ms, s, p, ep)) s++;
        else return NULL;
    }
}

static const char *clua_do_match(clua_match *ms, const char *s, const char *p) {
    if (ms->depth-- == 0) luaL_error(ms->L, "pattern too complex");
    clua_step(ms);
    while (p != ms->p_end) {
        switch (*p) {
        case '(':
            if (p + 1 < ms->p_end && *(p + 1) == ')') s = clua_start_capture(ms, s, p + 2, CLUA_CAP_POSITION);
            else s = clua_start_capture(ms, s, p + 1, CLUA_CAP_UNFINISHED);
            goto done;
        case ')':
            s = clua_end_capture(ms, s, p + 1);
            goto done;
        case '$':
            if (p + 1 != ms->p_end) goto plain;
            s = (s == ms->src_end) ? s : NULL;
            goto done;
        case '%':
            if (p + 1 >= ms->p_end) clua_class_end_error(ms);
            switch (*(p + 1)) {
            case 'b':
                s = clua_balance(ms, s, p + 2);
                if (s != NULL) {
                    p += 4;
                    continue;
                }
                goto done;
            case 'f': {
                p += 2;
                if (p >= ms->p_end || *p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                const char *ep = clua_class_end(ms, p);
                int previous = (s == ms->src_init) ? '\0' : (unsigned char)*(s - 1);
                int current = (s < ms->src_end) ? (unsigned char)*s : '\0';
                if (!clua_in_set(previous, p, ep - 1) && clua_in_set(current, p, ep - 1)) {
                    p = ep;
                    continue;
                }
                s = NULL;
                goto done;
            }
            case '0': case '1': case '2': case '3': case '4':
            case '5': case '6': case '7': case '8': case '9':
                s = clua_back_reference(ms, s, (unsigned char)*(p + 1));
                if (s != NULL) {
                    p += 2;
                    continue;
                }
                goto done;
            default:
                goto plain;
            }
        default:
        plain: {
            const char *ep = clua_class_end(ms, p);
            char quantifier = ep < ms->p_end ? *ep : '\0';
            if (!clua_single(ms, s, p, ep)) {
                if (quantifier == '*' || quantifier == '?' || quantifier == '-') {
                    p = ep + 1;
                    continue;
                }
                s = NULL;
            } else {
                switch (quantifier) {
                case '?': {
                    const char *res = clua_do_match(ms, s + 1, ep + 1);
                    if (res != NULL) s = res;
                    else {
                        p = ep + 1;
                        continue;
                    }
                    break;
                }
                case '+': s = clua_max_expand(ms, s + 1, p, ep); break;
                case '*': s = clua_max_expand(ms, s, p, ep); break;
                case '-': s = clua_min_expand(ms, s, p, ep); break;
                default:
                    s++;
                    p = ep;
                    continue;
                }
            }
            goto done;
        }
        }
    }
done:
    ms->depth++;
    return s;
}

static void clua_match_prepare(clua_match *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
    ms->L = L;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->level = 0;
    ms->depth = CLUA_PATTERN_DEPTH;
    ms->steps = 0;
}

static void clua_match_reset(clua_match *ms) {
    ms->level = 0;
    ms->depth = CLUA_PATTERN_DEPTH;
}

/* Pushes capture i (or the whole match s..e when there are none and i is 0); returns its length or -2. */
static void clua_push_capture(clua_match *ms, int i, const char *s, const char *e) {
    if (i >= ms->level) {
        if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(ms->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = ms->capture[i].len;
    if (len == CLUA_CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
    if (len == CLUA_CAP_POSITION) lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
    else lua_pushlstring(ms->L, ms->capture[i].init, (size_t)len);
}

static int clua_push_captures(clua_match *ms, const char *s, const char *e) {
    int n = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++) clua_push_capture(ms, i, s, e);
    return n;
}

/* A 1-based, possibly negative, start position as an offset in 0…len+1 (len + 1 means past the end). */
static size_t clua_start_offset(lua_Integer position, size_t len) {
    if (position > 0) return (size_t)position - 1;
    if (position == 0) return 0;
    if (position < -(lua_Integer)len) return 0;
    return len + (size_t)position;
}

static int clua_has_specials(const char *p, size_t lp) {
    for (size_t i = 0; i < lp; i++)
        if (strchr("^$*+?.([%-", p[i]) != NULL && p[i] != '\0') return 1;
    return 0;
}

static const char *clua_plain_find(clua_match *ms, const char *s, size_t ls, const char *p, size_t lp) {
    if (lp == 0) return s;
    if (lp > ls) return NULL;
    const char *last = s + (ls - lp);
    for (const char *at = s; at <= last; at++) {
        clua_step(ms);
        if (*at == *p && memcmp(at, p, lp) == 0) return at;
    }
    return NULL;
}

static int clua_find_or_match(lua_State *L, int find) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = clua_start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    clua_match ms;
    clua_match_prepare(&ms, L, s, ls, p, lp);
    if (find && (lua_toboolean(L, 4) || !clua_has_specials(p, lp))) {
        const char *at = clua_plain_find(&ms, s + init, ls - init, p, lp);
        clua_pattern_charge(&ms);
        if (at) {
            lua_pushinteger(L, (at - s) + 1);
            lua_pushinteger(L, (at - s) + (lua_Integer)lp);
            return 2;
        }
    } else {
        const char *s1 = s + init;
        int anchor = (lp > 0 && *p == '^');
        if (anchor) {
            p++;
            lp--;
            ms.p_end = p + lp;
        }
        do {
            clua_match_reset(&ms);
            const char *e = clua_do_match(&ms, s1, p);
            if (e != NULL) {
                clua_pattern_charge(&ms);
                if (find) {
                    lua_pushinteger(L, (s1 - s) + 1);
                    lua_pushinteger(L, e - s);
                    return clua_push_captures(&ms, NULL, NULL) + 2;
                }
                return clua_push_captures(&ms, s1, e);
            }
        } while (s1++ < ms.src_end && !anchor);
        clua_pattern_charge(&ms);
    }
    luaL_pushfail(L);
    return 1;
}

static int clua_str_find(lua_State *L) { return clua_find_or_match(L, 1); }
static int clua_str_match(lua_State *L) { return clua_find_or_match(L, 0); }

/* gmatch's iterator: upvalues are the subject, the pattern, the next offset and the end of the last match. */
static int clua_gmatch_next(lua_State *L) {
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    lua_Integer position = lua_tointeger(L, lua_upvalueindex(3));
    lua_Integer last = lua_tointeger(L, lua_upvalueindex(4));
    clua_match ms;
    clua_match_prepare(&ms, L, s, ls, p, lp);
    for (const char *src = s + position; src <= ms.src_end; src++) {
        clua_match_reset(&ms);
        const char *e = clua_do_match(&ms, src, p);
        if (e != NULL && (last < 0 || e != s + last)) {
            clua_pattern_charge(&ms);
            lua_pushinteger(L, e - s);
            lua_replace(L, lua_upvalueindex(3));
            lua_pushinteger(L, e - s);
            lua_replace(L, lua_upvalueindex(4));
            return clua_push_captures(&ms, src, e);
        }
    }
    clua_pattern_charge(&ms);
    return 0;
}

static int clua_str_gmatch(lua_State *L) {
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = clua_start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) init = ls + 1;
    lua_settop(L, 2);
    lua_pushinteger(L, (lua_Integer)init);
    lua_pushinteger(L, -1);
    lua_pushcclosure(L, clua_gmatch_next, 4);
    return 1;
}

/* Appends the replacement for the match s..e: a string with %0–%9 and %%, a table looked up by the first
 * capture, or a function called with the captures. false or nil keeps the original text. */
static void clua_add_value(clua_match *ms, luaL_Buffer *b, const char *s, const char *e, int tr) {
    lua_State *L = ms->L;
    if (tr == LUA_TSTRING || tr == LUA_TNUMBER) {
        size_t l;
        const char *news = lua_tolstring(L, 3, &l);
        for (size_t i = 0; i < l; i++) {
            if (news[i] != '%') {
                luaL_addchar(b, news[i]);
                continue;
            }
            i++;
            if (i >= l) luaL_error(L, "invalid use of '%%' in replacement string");
            if (news[i] == '%') {
                luaL_addchar(b, '%');
            } else if (isdigit((unsigned char)news[i])) {
                if (news[i] == '0') {
                    luaL_addlstring(b, s, (size_t)(e - s));
                } else {
                    clua_push_capture(ms, news[i] - '1', s, e);
                    luaL_tolstring(L, -1, NULL);
                    lua_remove(L, -2);
                    luaL_addvalue(b);
                }
            } else {
                luaL_error(L, "invalid use of '%%' in replacement string");
            }
        }
        ms->steps += (long)(l / 16);
        return;
    }
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = clua_push_captures(ms, s, e);
        lua_call(L, n, 1);
    } else {
        clua_push_capture(ms, 0, s, e);
        lua_gettable(L, 3);
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int clua_str_gsub(lua_State *L) {
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    int anchor = (lp > 0 && *p == '^');
    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                     "string/function/table");
    if (anchor) {
        p++;
        lp--;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    clua_match ms;
    clua_match_prepare(&ms, L, src, srcl, p, lp);
    lua_Integer n = 0;
    while (n < max_s) {
        clua_match_reset(&ms);
        const char *e = clua_do_match(&ms, src, p);
        if (e != NULL && e != lastmatch) {
            n++;
            clua_add_value(&ms, &b, src, e, tr);
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor) break;
    }
    clua_pattern_charge(&ms);
    luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

#endif
