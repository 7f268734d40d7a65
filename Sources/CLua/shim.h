#ifndef VIGIL_CLUA_SHIM_H
#define VIGIL_CLUA_SHIM_H

/*
 * Lua 5.4 for Swift. Swift cannot see Lua's function-like macros, so they become `clua_*` functions
 * here. Everything that can longjmp (raising errors, the count hook, the host-function trampoline)
 * lives in this C so that no longjmp ever crosses a Swift frame.
 */

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- macros as functions ------------------------------------------------------------------- */

static inline int clua_registryindex(void) { return LUA_REGISTRYINDEX; }
static inline int clua_upvalueindex(int i) { return lua_upvalueindex(i); }
static inline void clua_pop(lua_State *L, int n) { lua_pop(L, n); }
static inline void clua_newtable(lua_State *L) { lua_newtable(L); }
static inline const char *clua_tostring(lua_State *L, int i) { return lua_tostring(L, i); }
static inline lua_Number clua_tonumber(lua_State *L, int i) { return lua_tonumber(L, i); }
static inline lua_Integer clua_tointeger(lua_State *L, int i) { return lua_tointeger(L, i); }
static inline int clua_isinteger(lua_State *L, int i) { return lua_isinteger(L, i); }
static inline void clua_insert(lua_State *L, int i) { lua_insert(L, i); }
static inline void clua_remove(lua_State *L, int i) { lua_remove(L, i); }
static inline int clua_pcall(lua_State *L, int nargs, int nresults, int msgh) {
    return lua_pcall(L, nargs, nresults, msgh);
}
static inline int clua_loadbuffer(lua_State *L, const char *buf, size_t size, const char *name) {
    /* Text only: binary chunks are never accepted from anywhere. */
    return luaL_loadbufferx(L, buf, size, name, "t");
}
static inline void clua_pushglobaltable(lua_State *L) { lua_pushglobaltable(L); }
/* lua_gc is variadic, which Swift cannot call. */
static inline void clua_gc_collect(lua_State *L) { lua_gc(L, LUA_GCCOLLECT); }
static inline int clua_gc_count_kb(lua_State *L) { return lua_gc(L, LUA_GCCOUNT); }

/* ---- the sandbox: limits shared by every thread (coroutine) of one state ----------------------- */

enum {
    CLUA_LIMIT_NONE = 0,
    CLUA_LIMIT_MEMORY = 1,
    CLUA_LIMIT_INSTRUCTIONS = 2,
    CLUA_LIMIT_DEADLINE = 3,
    CLUA_LIMIT_CALL_DEPTH = 4,
};

/* The count hook runs every CLUA_HOOK_STEP VM instructions. */
#define CLUA_HOOK_STEP 1000

typedef struct clua_sandbox {
    size_t used;            /* bytes held by the state now */
    size_t cap;             /* byte cap; 0 = none */
    int host_depth;         /* > 0 while a Swift host function runs: allocations never fail then */
    int limit_hit;          /* CLUA_LIMIT_* of the last limit crossed */
    int refused;            /* the last growing allocation was refused (Lua retries once after an emergency GC) */
    int memory_failed;      /* an allocation was refused twice in a row: Lua raised a memory error in this call */
    int64_t budget;         /* instructions left in this call */
    int64_t budget_total;   /* the call's budget; 0 = no budget */
    int64_t deadline_ns;    /* CLOCK_MONOTONIC deadline of this call; 0 = none */
    int64_t deadline_ms;    /* the configured deadline, for the message */
    int max_depth;          /* nested Lua calls allowed; 0 = no limit */
    int where_line;         /* line last seen by the hook in this call (for memory errors) */
    char where_source[LUA_IDSIZE]; /* its chunk */
} clua_sandbox;

static inline const char *clua_sandbox_where_source(const clua_sandbox *sb) { return sb->where_source; }

static inline int64_t clua_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}

/* lua_Alloc with a byte cap. When ptr is NULL, osize is a type tag, not a size. Shrinking never fails
 * (Lua relies on that). Inside a host function nothing fails, so a longjmp never starts under Swift;
 * the trampoline checks the cap when the host function returns. */
static inline void *clua_sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    clua_sandbox *sb = (clua_sandbox *)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        sb->used -= old;
        return NULL;
    }
    if (sb->cap && nsize > old && sb->host_depth == 0 && sb->used - old + nsize > sb->cap) {
        sb->limit_hit = CLUA_LIMIT_MEMORY;
        /* Lua asks again after a full collection; a second refusal is the memory error the script sees. */
        if (sb->refused) sb->memory_failed = 1;
        sb->refused = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL) return NULL;
    if (nsize > old) sb->refused = 0;
    sb->used = sb->used - old + nsize;
    return p;
}

static inline clua_sandbox *clua_sandbox_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return (clua_sandbox *)ud;
}

/* Ends the running call once a limit is crossed. After the first crossing the hook fires on every
 * instruction, so a script's own pcall cannot swallow the error for long. */
static inline void clua_limit_exceeded(lua_State *L, clua_sandbox *sb, int which) {
    sb->limit_hit = which;
    lua_sethook(L, lua_gethook(L), LUA_MASKCOUNT, 1);
    switch (which) {
    case CLUA_LIMIT_INSTRUCTIONS:
        luaL_error(L, "instruction limit exceeded (%I instructions per call)", (LUAI_UACINT)sb->budget_total);
        break;
    case CLUA_LIMIT_DEADLINE:
        luaL_error(L, "deadline exceeded (%I ms per call)", (LUAI_UACINT)sb->deadline_ms);
        break;
    default:
        luaL_error(L, "call depth limit exceeded (%d nested calls)", sb->max_depth);
        break;
    }
}

static inline void clua_count_hook(lua_State *L, lua_Debug *ar) {
    clua_sandbox *sb = clua_sandbox_of(L);
    /* Remember where the call is: a memory error unwinds without a message handler. */
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0) {
        sb->where_line = ar->currentline;
        memcpy(sb->where_source, ar->short_src, LUA_IDSIZE);
    }
    if (sb->limit_hit == CLUA_LIMIT_INSTRUCTIONS || sb->limit_hit == CLUA_LIMIT_DEADLINE ||
        sb->limit_hit == CLUA_LIMIT_CALL_DEPTH) {
        clua_limit_exceeded(L, sb, sb->limit_hit);
    }
    if (sb->memory_failed) {
        /* A script that caught its memory error (pcall, coroutine.resume) does not carry on. */
        lua_sethook(L, lua_gethook(L), LUA_MASKCOUNT, 1);
        luaL_error(L, "not enough memory");
    }
    if (sb->budget_total > 0) {
        sb->budget -= CLUA_HOOK_STEP;
        if (sb->budget < 0) clua_limit_exceeded(L, sb, CLUA_LIMIT_INSTRUCTIONS);
    }
    if (sb->deadline_ns > 0 && clua_monotonic_ns() > sb->deadline_ns) {
        clua_limit_exceeded(L, sb, CLUA_LIMIT_DEADLINE);
    }
    if (sb->max_depth > 0) {
        lua_Debug probe;
        if (lua_getstack(L, sb->max_depth, &probe)) clua_limit_exceeded(L, sb, CLUA_LIMIT_CALL_DEPTH);
    }
}

/* Opens a state whose allocator is capped by `sb` (owned by the caller, outliving the state). */
static inline lua_State *clua_sandbox_newstate(clua_sandbox *sb) {
    lua_State *L = lua_newstate(clua_sandbox_alloc, sb);
    if (L != NULL) lua_sethook(L, clua_count_hook, LUA_MASKCOUNT, CLUA_HOOK_STEP);
    return L;
}

/* Arms the limits for one call. The hook stays installed between calls and keeps the last call's
 * deadline, so finalizers or other code that runs outside a call cannot run unbounded either. */
static inline void clua_sandbox_arm(lua_State *L, int64_t budget, int64_t deadline_ms, int max_depth) {
    clua_sandbox *sb = clua_sandbox_of(L);
    sb->limit_hit = CLUA_LIMIT_NONE;
    sb->refused = 0;
    sb->memory_failed = 0;
    sb->budget = budget;
    sb->budget_total = budget;
    sb->deadline_ms = deadline_ms;
    sb->deadline_ns = deadline_ms > 0 ? clua_monotonic_ns() + deadline_ms * 1000000LL : 0;
    sb->max_depth = max_depth;
    sb->where_line = 0;
    sb->where_source[0] = '\0';
    lua_sethook(L, clua_count_hook, LUA_MASKCOUNT, CLUA_HOOK_STEP);
}

/* The limit a call crossed even though it returned normally: a script may catch a limit's error in a pcall
 * or a coroutine (hooks are per thread, so a coroutine's error does not reach the main thread's hook at
 * once) and return before the hook fires again. Such a call still failed. CLUA_LIMIT_NONE when none. */
static inline int clua_sandbox_crossed(lua_State *L) {
    clua_sandbox *sb = clua_sandbox_of(L);
    if (sb->memory_failed) return CLUA_LIMIT_MEMORY;
    if (sb->limit_hit == CLUA_LIMIT_MEMORY) return CLUA_LIMIT_NONE; /* refused once, then satisfied after a collection */
    return sb->limit_hit;
}

/* ---- messages ---------------------------------------------------------------------------------- */

/* Message handler for lua_pcall: the message followed by "\nstack traceback:\n…". A non-string error
 * object is described by its __tostring or its type. */
static inline int clua_traceback_handler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
            msg = lua_tostring(L, -1);
        } else {
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        }
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static inline void clua_push_traceback_handler(lua_State *L) { lua_pushcfunction(L, clua_traceback_handler); }

/* ---- Swift host functions ---------------------------------------------------------------------- */

/* A Swift host function: reads its arguments, pushes its results and returns how many, or returns
 * -1 with an error message pushed. It never raises: the trampoline does, from C. */
typedef int (*clua_host_fn)(lua_State *L, void *context);

static inline int clua_host_trampoline(lua_State *L) {
    clua_host_fn fn = (clua_host_fn)lua_touserdata(L, lua_upvalueindex(1));
    void *context = lua_touserdata(L, lua_upvalueindex(2));
    clua_sandbox *sb = clua_sandbox_of(L);
    sb->host_depth++;
    int n = fn(L, context);
    sb->host_depth--;
    if (n < 0) {
        /* Prefix the caller's position, as luaL_error does. */
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
        return lua_error(L);
    }
    if (sb->cap && sb->used > sb->cap) {
        sb->limit_hit = CLUA_LIMIT_MEMORY;
        return luaL_error(L, "not enough memory");
    }
    return n;
}

/* Pushes a closure that calls `fn` with `context` (kept alive by the Swift owner of the state). */
static inline void clua_push_host_function(lua_State *L, clua_host_fn fn, void *context) {
    lua_pushlightuserdata(L, (void *)fn);
    lua_pushlightuserdata(L, context);
    lua_pushcclosure(L, clua_host_trampoline, 2);
}

/* Opens one standard library by name into the global table (like luaL_openlibs, but chosen). */
static inline void clua_open_library(lua_State *L, const char *name) {
    lua_CFunction open = NULL;
    if (strcmp(name, "_G") == 0) open = luaopen_base;
    else if (strcmp(name, "string") == 0) open = luaopen_string;
    else if (strcmp(name, "table") == 0) open = luaopen_table;
    else if (strcmp(name, "math") == 0) open = luaopen_math;
    else if (strcmp(name, "utf8") == 0) open = luaopen_utf8;
    else if (strcmp(name, "coroutine") == 0) open = luaopen_coroutine;
    else if (strcmp(name, "os") == 0) open = luaopen_os;
    if (open == NULL) return;
    luaL_requiref(L, name, open, 1);
    lua_pop(L, 1);
}

/* ---- pattern functions with a budget ---------------------------------------------------------- */

#include "patterns.h"

/* Charges a matcher's steps to the call's instruction budget and checks its deadline. */
static inline void clua_pattern_charge(clua_match *ms) {
    clua_sandbox *sb = clua_sandbox_of(ms->L);
    long steps = ms->steps;
    ms->steps = 0;
    if (sb->budget_total > 0) {
        sb->budget -= steps / CLUA_PATTERN_STEPS;
        if (sb->budget < 0) clua_limit_exceeded(ms->L, sb, CLUA_LIMIT_INSTRUCTIONS);
    }
    if (sb->deadline_ns > 0 && clua_monotonic_ns() > sb->deadline_ns) clua_limit_exceeded(ms->L, sb, CLUA_LIMIT_DEADLINE);
}

/* Replaces string.find, match, gmatch and gsub (and so the string methods) with the budgeted matcher. */
static inline void clua_install_bounded_patterns(lua_State *L) {
    lua_getglobal(L, "string");
    if (lua_istable(L, -1)) {
        lua_pushcfunction(L, clua_str_find);
        lua_setfield(L, -2, "find");
        lua_pushcfunction(L, clua_str_match);
        lua_setfield(L, -2, "match");
        lua_pushcfunction(L, clua_str_gmatch);
        lua_setfield(L, -2, "gmatch");
        lua_pushcfunction(L, clua_str_gsub);
        lua_setfield(L, -2, "gsub");
    }
    lua_pop(L, 1);
}

#endif
