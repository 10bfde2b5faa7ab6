/*
 * Reading the configuration from C++: NGX_CONF_ERROR as the char * that
 * directive handlers return, the one way a C++ exception becomes an
 * [emerg] with the file and line being read.
 * Shared by the glue of every dynroute module.
 */
#pragma once

#include <cstddef>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ngx.hpp"
#include "ngx_http_dynroute_string.hpp"
#include "conf_text.hpp"


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


/*
 * Where the file being read was read up to, just after a ";" or a "{": set
 * when a block opens and after each of its lines, so that the line being
 * handled can be read again from there (ngx_http_dynroute_conf_lines).
 */
typedef struct {
    ngx_conf_file_t  *file;
    ngx_str_t         name;
    off_t             offset;
    ngx_uint_t        line;
} ngx_http_dynroute_conf_mark_t;


static inline void
ngx_http_dynroute_conf_mark(ngx_conf_t *cf, ngx_http_dynroute_conf_mark_t *m)
    noexcept
{
    ngx_buf_t  *b;

    b = cf->conf_file->buffer;

    if (b == NULL) {
        return;     /* not read from a file: no line to name */
    }

    m->file = cf->conf_file;
    m->name = cf->conf_file->file.name;
    m->offset = cf->conf_file->file.offset - (b->last - b->pos);
    m->line = cf->conf_file->line;
}


/*
 * The line that each token of the line being handled (cf->args) begins
 * on, for messages that name the line of one of them: nginx keeps the
 * line of the last only.  The line is read again from the file, from the
 * mark (from the start of the file for the first line of an included
 * file).  Empty if it cannot be told.  May throw.
 */
static inline std::vector<std::size_t>
ngx_http_dynroute_conf_lines(ngx_conf_t *cf,
    const ngx_http_dynroute_conf_mark_t *m)
{
    static constexpr off_t  max_text = 65536;

    off_t             start, end;
    ssize_t           n;
    ngx_buf_t        *b;
    ngx_uint_t        line;
    ngx_file_t        file;
    ngx_conf_file_t  *cfile = cf->conf_file;

    b = cfile->buffer;

    if (b == NULL || cfile->file.fd == NGX_INVALID_FILE) {
        return {};
    }

    if (cfile == m->file && ngx_http_dynroute_eq(cfile->file.name, m->name)) {
        start = m->offset;
        line = m->line;

    } else {
        start = 0;
        line = 1;
    }

    end = cfile->file.offset - (b->last - b->pos);

    if (end <= start || end - start > max_text) {
        return {};
    }

    std::string  text(static_cast<size_t>(end - start), '\0');

    /* a copy: nginx's own offset stays where its parser is */
    file = cfile->file;

    n = ngx_read_file(&file, reinterpret_cast<u_char *>(&text[0]),
                      text.size(), start);
    if (n != static_cast<ssize_t>(text.size())) {
        return {};
    }

    auto lines = dynroute::directive_lines(text, line);

    if (lines.size() != cf->args->nelts) {
        return {};
    }

    return lines;
}
