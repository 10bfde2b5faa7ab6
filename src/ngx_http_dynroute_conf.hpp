/*
 * Reading the configuration from C++: NGX_CONF_ERROR as the char * that
 * directive handlers return, the one way a C++ exception becomes an
 * [emerg] with the file and line being read.
 * Shared by the glue of every dynroute module.
 */
#pragma once

#include <exception>
#include <string_view>
#include <utility>

#include "ngx.hpp"
#include "ngx_http_dynroute_string.hpp"


#define NGX_HTTP_DYNROUTE_CONF_ERROR  static_cast<char *>(NGX_CONF_ERROR)


/*
 * Called inside a catch block of a directive handler: logs the exception
 * being handled, with cf's file and line, and returns NGX_CONF_ERROR.
 * what: a prefix naming the block or directive, e.g. "dynroute".
 */
static inline char *
ngx_http_dynroute_conf_caught(ngx_conf_t *cf, const char *what) noexcept
{
    try {
        throw;

    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: %s", what, e.what());

    } catch (...) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: unknown error", what);
    }

    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


/* deletes what ngx_http_dynroute_conf_new made */
template <typename T>
static void
ngx_http_dynroute_conf_delete(void *data) noexcept
{
    delete static_cast<T *>(data);
}


/*
 * A new T(args...), deleted by a cleanup of the configuration's pool, so
 * that a reload frees it with its cycle.  NULL on failure, with an [emerg]
 * prefixed by what if the constructor threw.
 */
template <typename T, typename... Args>
static inline T *
ngx_http_dynroute_conf_new(ngx_conf_t *cf, const char *what, Args &&...args)
    noexcept
{
    T                   *p;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    try {
        p = new T(std::forward<Args>(args)...);

    } catch (...) {
        (void) ngx_http_dynroute_conf_caught(cf, what);
        return NULL;
    }

    cln->handler = ngx_http_dynroute_conf_delete<T>;
    cln->data = p;

    return p;
}


/*
 * What a message about an unknown name adds when a known one is close to
 * it (see suggest.hpp): " (did you mean "best"?)", or "" when best is
 * empty or there is no memory to say it; for "%V".
 */
static inline ngx_str_t
ngx_http_dynroute_did_you_mean(ngx_conf_t *cf, std::string_view best)
    noexcept
{
    static const char  before[] = " (did you mean \"", after[] = "\"?)";

    u_char     *p;
    ngx_str_t   s;

    s.len = sizeof(before) - 1 + best.size() + sizeof(after) - 1;
    s.data = best.empty() ? NULL
                          : static_cast<u_char *>(ngx_pnalloc(cf->pool, s.len));

    if (s.data == NULL) {
        ngx_str_set(&s, "");
        return s;
    }

    p = ngx_cpymem(s.data, before, sizeof(before) - 1);
    p = ngx_cpymem(p, best.data(), best.size());
    ngx_memcpy(p, after, sizeof(after) - 1);

    return s;
}


/* the named block (a table, a rollout) of that name in blocks, or NULL */
template <typename T>
static inline T *
ngx_http_dynroute_find_named(const ngx_array_t &blocks, const ngx_str_t &name)
    noexcept
{
    ngx_uint_t   i;
    T          **p;

    p = static_cast<T **>(blocks.elts);

    for (i = 0; i < blocks.nelts; i++) {
        if (ngx_http_dynroute_eq(p[i]->name, name)) {
            return p[i];
        }
    }

    return NULL;
}


/*
 * A new named block (a T with name, file and line) for the block directive
 * being read, added to blocks; NULL (and an [emerg]) if the name is taken.
 * what: "dynroute table", "dynroute rollout".
 */
template <typename T>
static inline T *
ngx_http_dynroute_conf_new_named(ngx_conf_t *cf, ngx_array_t *blocks,
    const char *what) noexcept
{
    T          *b, **bp;
    ngx_str_t  *value;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    b = ngx_http_dynroute_find_named<T>(*blocks, value[1]);
    if (b) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate %s \"%V\", first defined in %s:%ui",
                           what, &value[1], b->file, b->line);
        return NULL;
    }

    b = ngx_http_dynroute_conf_new<T>(cf, "dynroute");
    if (b == NULL) {
        return NULL;
    }

    b->name = value[1];
    b->file = cf->conf_file->file.name.data;
    b->line = cf->conf_file->line;

    bp = static_cast<T **>(ngx_array_push(blocks));
    if (bp == NULL) {
        return NULL;
    }

    *bp = b;

    return b;
}


/*
 * Parses the block that follows a block directive, as map{} does: each line
 * goes to handler, with cf->ctx set to ctx (the parse state) and
 * cf->handler_conf to conf; *cf is restored afterwards.
 */
static inline char *
ngx_http_dynroute_conf_block(ngx_conf_t *cf, ngx_conf_handler_pt handler,
    void *ctx, void *conf) noexcept
{
    char        *rv;
    ngx_conf_t   save;

    save = *cf;
    cf->ctx = ctx;
    cf->handler = handler;
    cf->handler_conf = static_cast<char *>(conf);

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    return rv;
}
