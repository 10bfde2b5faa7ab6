/*
 * dynroute_rollout: canary, A/B/n and blue/green splits as table targets.
 *
 * The split itself lives in src/core/rollout.cpp; this file reads the block,
 * checks it against the rest of the configuration, and gathers what a
 * request offers (override header and cookie, client address, key) for the
 * core to decide.
 */

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "ngx_http_dynroute_rollout.hpp"
#include "ngx_http_dynroute_guard.hpp"
#include "ngx_http_dynroute_ramp.hpp"
#include "ngx_http_dynroute_targets.hpp"


/* what the block defers until all its variants are known */
typedef struct {
    ngx_str_t                  variant;
    dynroute::Cidr             cidr;
    u_char                    *file;
    ngx_uint_t                 line;
} ngx_http_dynroute_deferred_t;


typedef struct {
    ngx_http_dynroute_rollout_t                *rollout;
    void                                       *http_ctx;
    std::vector<ngx_http_dynroute_deferred_t>   sources;
    ngx_http_dynroute_deferred_t                primary;
    std::vector<ngx_str_t>                      keys;  /* names, no '$' */
    bool                                        has_primary;
    bool                                        has_key;
    bool                                        has_override_from;

    /* where the last line of the block ended (or its "{" did): where a
     * line lacking its ";" was written */
    ngx_http_dynroute_conf_mark_t               mark;
} ngx_http_dynroute_rollout_parse_t;


static char *ngx_http_dynroute_rollout_line(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf) noexcept;
static char *ngx_http_dynroute_rollout_directive(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value);
static char *ngx_http_dynroute_rollout_finish(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p);


char *
ngx_http_dynroute_rollout_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_dynroute_main_conf_t *dmcf =
        static_cast<ngx_http_dynroute_main_conf_t *>(conf);

    char                         *rv;
    ngx_str_t                    *value;
    ngx_http_dynroute_rollout_t  *ro;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    ro = ngx_http_dynroute_conf_new_named<ngx_http_dynroute_rollout_t>(cf,
             &dmcf->rollouts, "dynroute rollout");
    if (ro == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    try {
        ro->core.reset(new dynroute::Rollout(
                           ngx_http_dynroute_view(value[1])));

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    try {
        ngx_http_dynroute_rollout_parse_t  p{};

        p.rollout = ro;
        p.http_ctx = cf->ctx;
        ngx_http_dynroute_conf_mark(cf, &p.mark);

        rv = ngx_http_dynroute_conf_block(cf, ngx_http_dynroute_rollout_line,
                                          &p, conf);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        return ngx_http_dynroute_rollout_finish(cf, &p);

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }
}


static char *
ngx_http_dynroute_rollout_line(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf) noexcept
{
    ngx_http_dynroute_rollout_parse_t *p =
        static_cast<ngx_http_dynroute_rollout_parse_t *>(cf->ctx);

    char       *rv;
    ngx_str_t  *value;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    if (cf->args->nelts == 2 && ngx_http_dynroute_is(value[0], "include")) {
        if (ngx_conf_include(cf, dummy, conf) != NGX_CONF_OK) {
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        ngx_http_dynroute_conf_mark(cf, &p->mark);
        return NGX_CONF_OK;
    }

    try {
        rv = ngx_http_dynroute_rollout_directive(cf, p, value);

        if (rv == NGX_CONF_OK) {
            ngx_http_dynroute_conf_mark(cf, &p->mark);
        }

        return rv;

    } catch (const dynroute::ConfigError &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s in dynroute rollout \"%V\"", e.what(),
                           &p->rollout->name);

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


/* letters, digits, '-' and '_': a header or cookie name */

static bool
ngx_http_dynroute_token(const ngx_str_t &s) noexcept
{
    u_char      c;
    ngx_uint_t  i;

    for (i = 0; i < s.len; i++) {
        c = s.data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            return false;
        }
    }

    return s.len > 0;
}


static char *
ngx_http_dynroute_rollout_arity(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value,
    const char *expected)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid number of parameters in \"%V\" of dynroute "
                       "rollout \"%V\": expected %s", &value[0],
                       &p->rollout->name, expected);

    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


static char *
ngx_http_dynroute_rollout_duplicate(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "duplicate \"%V\" in dynroute rollout \"%V\"",
                       &value[0], &p->rollout->name);

    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


/*
 * The lines of a dynroute_rollout block, read like nginx's own directives:
 * a name, how many parameters it takes, and a handler.  The handlers may
 * throw: ngx_http_dynroute_rollout_line turns exceptions into [emerg].
 */

typedef char *(*ngx_http_dynroute_rollout_set_pt)(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value);

typedef struct {
    const char                        *name;
    ngx_uint_t                         min;       /* parameters */
    ngx_uint_t                         max;
    const char                        *expected;
    ngx_http_dynroute_rollout_set_pt   set;
} ngx_http_dynroute_rollout_cmd_t;


static char *
ngx_http_dynroute_rollout_variant(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    ngx_http_dynroute_variant_t   v{};
    ngx_http_dynroute_rollout_t  *ro = p->rollout;

    if (value[2].len == 0 || value[2].data[0] == '@') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid upstream \"%V\" of variant \"%V\" "
                           "in dynroute rollout \"%V\": a variant's "
                           "upstream is an upstream{} block",
                           &value[2], &value[1], &ro->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    ro->core->add_variant(ngx_http_dynroute_view(value[1]),
                          ngx_http_dynroute_view(value[3]));

    v.name = value[1];
    v.upstream = value[2];
    v.file = cf->conf_file->file.name.data;
    v.line = cf->conf_file->line;
    ro->variants.push_back(v);

    return NGX_CONF_OK;
}


static char *
ngx_http_dynroute_rollout_key(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    void                         *ctx;
    ngx_str_t                     name;
    ngx_int_t                     index;
    ngx_uint_t                    i;
    ngx_http_dynroute_rollout_t  *ro = p->rollout;

    if (p->has_key) {
        return ngx_http_dynroute_rollout_duplicate(cf, p, value);
    }

    p->has_key = true;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len < 2 || value[i].data[0] != '$') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid key \"%V\" in dynroute rollout "
                               "\"%V\": expected a variable such as "
                               "$cookie_uid", &value[i], &ro->name);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        name.data = value[i].data + 1;
        name.len = value[i].len - 1;

        /* the variables API needs the http{} context */

        ctx = cf->ctx;
        cf->ctx = p->http_ctx;
        index = ngx_http_get_variable_index(cf, &name);
        cf->ctx = ctx;

        if (index == NGX_ERROR) {
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        ro->keys.push_back(index);
        p->keys.push_back(name);
    }

    return NGX_CONF_OK;
}


/* "header NAME" and "cookie NAME" */

static char *
ngx_http_dynroute_rollout_override(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    ngx_http_dynroute_rollout_t  *ro = p->rollout;

    ngx_str_t  *target = (value[0].data[0] == 'h') ? &ro->header
                                                   : &ro->cookie;

    if (target->len) {
        return ngx_http_dynroute_rollout_duplicate(cf, p, value);
    }

    if (!ngx_http_dynroute_token(value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %V name \"%V\" in dynroute rollout "
                           "\"%V\": use letters, digits, '-' and '_'",
                           &value[0], &value[1], &ro->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    *target = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_http_dynroute_rollout_source(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    ngx_http_dynroute_deferred_t  d;

    d.cidr = dynroute::parse_cidr(ngx_http_dynroute_view(value[1]));
    d.variant = value[2];
    d.file = cf->conf_file->file.name.data;
    d.line = cf->conf_file->line;

    if (d.cidr.host_bits) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "low address bits of %V are meaningless",
                           &value[1]);
    }

    p->sources.push_back(d);

    return NGX_CONF_OK;
}


static char *
ngx_http_dynroute_rollout_primary(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    if (p->has_primary) {
        return ngx_http_dynroute_rollout_duplicate(cf, p, value);
    }

    p->has_primary = true;
    p->primary.variant = value[1];
    p->primary.file = cf->conf_file->file.name.data;
    p->primary.line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* "override_from CIDR ...;" or "override_from all;" */

static char *
ngx_http_dynroute_rollout_override_from(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    ngx_uint_t                    i;
    dynroute::Cidr                cidr;
    ngx_http_dynroute_rollout_t  *ro = p->rollout;

    if (p->has_override_from) {
        return ngx_http_dynroute_rollout_duplicate(cf, p, value);
    }

    p->has_override_from = true;

    if (ngx_http_dynroute_is(value[1], "all")) {
        if (cf->args->nelts != 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"override_from all\" takes nothing else "
                               "in dynroute rollout \"%V\"", &ro->name);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        ro->core->override_from_all();
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        cidr = dynroute::parse_cidr(ngx_http_dynroute_view(value[i]));

        if (cidr.host_bits) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               &value[i]);
        }

        ro->core->add_override_from(cidr);
    }

    ro->overrides_checked = true;

    return NGX_CONF_OK;
}


/*
 * "sticky_cookie NAME [max_age=TIME] [domain=D] [path=P] [secure]
 * [httponly] [samesite=strict|lax|none]"
 */

static bool
ngx_http_dynroute_cookie_attr(const ngx_str_t &s, bool path) noexcept
{
    u_char      c;
    ngx_uint_t  i;

    for (i = 0; i < s.len; i++) {
        c = s.data[i];

        if (c <= 0x20 || c >= 0x7f || c == ';' || c == ','
            || (!path && c == '/'))
        {
            return false;
        }
    }

    return s.len > 0 && (!path || s.data[0] == '/');
}


/* the attributes of a sticky_cookie, as they are read */
typedef struct {
    ngx_str_t                  path;
    bool                       secure;
    const char                *samesite;
    std::string                attrs;    /* Max-Age, Domain, HttpOnly */
} ngx_http_dynroute_sticky_attrs_t;


/* one parameter of sticky_cookie after its name: false if invalid */

static bool
ngx_http_dynroute_sticky_attr(ngx_http_dynroute_rollout_t *ro, ngx_str_t v,
    ngx_http_dynroute_sticky_attrs_t &a)
{
    time_t  max_age;

    if (ngx_strncmp(v.data, "max_age=", 8) == 0) {
        v.data += 8;
        v.len -= 8;
        max_age = ngx_parse_time(&v, 1);

        if (max_age == (time_t) NGX_ERROR || v.len == 0) {
            return false;
        }

        a.attrs += "; Max-Age=" + std::to_string(max_age);

        /* the values expire on the server when the cookie does */

        ro->sticky_lifetime = (max_age > (time_t) NGX_MAX_UINT32_VALUE)
                              ? NGX_MAX_UINT32_VALUE
                              : static_cast<uint32_t>(max_age);
        return true;
    }

    if (ngx_strncmp(v.data, "domain=", 7) == 0) {
        v.data += 7;
        v.len -= 7;

        if (!ngx_http_dynroute_cookie_attr(v, false)) {
            return false;
        }

        a.attrs += "; Domain=";
        a.attrs.append(reinterpret_cast<char *>(v.data), v.len);
        return true;
    }

    if (ngx_strncmp(v.data, "path=", 5) == 0) {
        v.data += 5;
        v.len -= 5;

        if (!ngx_http_dynroute_cookie_attr(v, true)) {
            return false;
        }

        a.path = v;
        return true;
    }

    if (ngx_http_dynroute_is(v, "secure")) {
        a.secure = true;

    } else if (ngx_http_dynroute_is(v, "httponly")) {
        a.attrs += "; HttpOnly";

    } else if (ngx_http_dynroute_is(v, "samesite=strict")) {
        a.samesite = "Strict";

    } else if (ngx_http_dynroute_is(v, "samesite=lax")) {
        a.samesite = "Lax";

    } else if (ngx_http_dynroute_is(v, "samesite=none")) {
        a.samesite = "None";

    } else {
        return false;
    }

    return true;
}


static char *
ngx_http_dynroute_rollout_sticky(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    ngx_uint_t                        i;
    ngx_http_dynroute_rollout_t      *ro = p->rollout;
    ngx_http_dynroute_sticky_attrs_t  a;

    if (ro->sticky.len) {
        return ngx_http_dynroute_rollout_duplicate(cf, p, value);
    }

    if (!ngx_http_dynroute_token(value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid sticky_cookie name \"%V\" in dynroute "
                           "rollout \"%V\": use letters, digits, '-' and "
                           "'_'", &value[1], &ro->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    ngx_str_set(&a.path, "/");
    a.secure = false;
    a.samesite = NULL;
    ro->sticky_lifetime = dynroute::Rollout::sticky_session_lifetime;

    for (i = 2; i < cf->args->nelts; i++) {
        if (!ngx_http_dynroute_sticky_attr(ro, value[i], a)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of sticky_cookie in "
                               "dynroute rollout \"%V\": expected "
                               "max_age=TIME, domain=NAME, path=/PATH, "
                               "secure, httponly or "
                               "samesite=strict|lax|none",
                               &value[i], &ro->name);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }
    }

    if (a.samesite && a.samesite[0] == 'N' && !a.secure) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sticky_cookie \"%V\" in dynroute rollout "
                           "\"%V\" has samesite=none without secure, "
                           "which browsers refuse: add secure", &value[1],
                           &ro->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    ro->sticky = value[1];
    ro->sticky_attrs = "; Path=";
    ro->sticky_attrs.append(reinterpret_cast<char *>(a.path.data),
                            a.path.len);
    ro->sticky_attrs += a.attrs;

    if (a.secure) {
        ro->sticky_attrs += "; Secure";
    }

    if (a.samesite) {
        ro->sticky_attrs += "; SameSite=";
        ro->sticky_attrs += a.samesite;
    }

    ro->sticky_file = cf->conf_file->file.name.data;
    ro->sticky_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* "guard PARAMS": ngx_http_dynroute_guard.cpp */

static char *
ngx_http_dynroute_rollout_guard(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    return ngx_http_dynroute_guard_line(cf, p->rollout, value,
                                        cf->args->nelts - 1);
}


/* "ramp VARIANT STEP... hold=TIME": ngx_http_dynroute_ramp.cpp */

static char *
ngx_http_dynroute_rollout_ramp(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    return ngx_http_dynroute_ramp_line(cf, p->rollout, value,
                                       cf->args->nelts - 1);
}


static ngx_http_dynroute_rollout_cmd_t  ngx_http_dynroute_rollout_cmds[] = {
    { "variant", 3, 3, "a name, an upstream and a weight",
      ngx_http_dynroute_rollout_variant },
    { "key", 1, NGX_MAX_UINT32_VALUE, "one variable at least",
      ngx_http_dynroute_rollout_key },
    { "header", 1, 1, "a name", ngx_http_dynroute_rollout_override },
    { "cookie", 1, 1, "a name", ngx_http_dynroute_rollout_override },
    { "source", 2, 2, "an address and a variant",
      ngx_http_dynroute_rollout_source },
    { "primary", 1, 1, "a variant", ngx_http_dynroute_rollout_primary },
    { "override_from", 1, NGX_MAX_UINT32_VALUE,
      "addresses (CIDRs) or \"all\"",
      ngx_http_dynroute_rollout_override_from },
    { "sticky_cookie", 1, 8, "a name and its attributes",
      ngx_http_dynroute_rollout_sticky },
    { "guard", 1, 6, "errors=, latency=, window=, interval=, "
      "min_requests= or baseline=", ngx_http_dynroute_rollout_guard },
    { "ramp", 3, NGX_MAX_UINT32_VALUE, "a variant, its steps and hold=",
      ngx_http_dynroute_rollout_ramp },
};


/* a line of the block begins with name */

static bool
ngx_http_dynroute_rollout_is_cmd(const ngx_str_t &name) noexcept
{
    for (const auto &cmd : ngx_http_dynroute_rollout_cmds) {
        if (ngx_http_dynroute_is(name, cmd.name)) {
            return true;
        }
    }

    return ngx_http_dynroute_is(name, "include");
}


/*
 * A line whose ";" is missing, so that the next line was read as more of
 * its parameters: how many parameters the line has as written (the next
 * line begins after them), and *line, the line it ends on; 0 if that is
 * not what it looks like.  It looks like it when, after as many parameters
 * as the line's directive takes, comes the name of a directive of the
 * block, or, for a directive that takes a fixed number, one more that
 * begins on a later line.  No parameter may be such a name, nor one too
 * many: a line that looks like it is refused either way, and a valid one
 * is never read again.
 */

static ngx_uint_t
ngx_http_dynroute_rollout_unended(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value,
    const ngx_http_dynroute_rollout_cmd_t &cmd, ngx_uint_t *line)
{
    bool                      named;
    ngx_uint_t                i;
    std::vector<std::size_t>  lines;

    for (i = cmd.min + 1; i < cf->args->nelts && i - 1 <= cmd.max; i++) {
        named = ngx_http_dynroute_rollout_is_cmd(value[i]);

        if (!named && i - 1 != cmd.max) {
            continue;
        }

        if (lines.empty()) {
            lines = ngx_http_dynroute_conf_lines(cf, &p->mark);

            if (lines.empty()) {
                return 0;
            }
        }

        if (named || lines[i] > lines[i - 1]) {
            *line = lines[i - 1];
            return i - 1;
        }
    }

    return 0;
}


static char *
ngx_http_dynroute_rollout_directive(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    u_char      *pos;
    ngx_str_t    written;
    ngx_uint_t   n, i, line;

    for (const auto &cmd : ngx_http_dynroute_rollout_cmds) {
        if (!ngx_http_dynroute_is(value[0], cmd.name)) {
            continue;
        }

        line = 0;
        n = ngx_http_dynroute_rollout_unended(cf, p, value, cmd, &line);

        if (n) {
            /* the statement as far as it should have ended, in one string */

            written.len = n;
            for (i = 0; i <= n; i++) {
                written.len += value[i].len;
            }

            written.data = static_cast<u_char *>(
                               ngx_pnalloc(cf->temp_pool, written.len));
            if (written.data == NULL) {
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            pos = ngx_cpymem(written.data, value[0].data, value[0].len);
            for (i = 1; i <= n; i++) {
                *pos++ = ' ';
                pos = ngx_cpymem(pos, value[i].data, value[i].len);
            }

            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "missing \";\" after \"%V\" in dynroute rollout "
                          "\"%V\" in %s:%ui", &written,
                          &p->rollout->name, cf->conf_file->file.name.data,
                          line);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        n = cf->args->nelts - 1;

        if (n < cmd.min || n > cmd.max) {
            return ngx_http_dynroute_rollout_arity(cf, p, value,
                                                   cmd.expected);
        }

        return cmd.set(cf, p, value);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in dynroute rollout \"%V\": "
                       "expected variant, key, header, cookie, "
                       "override_from, source, sticky_cookie, primary, "
                       "guard or ramp",
                       &value[0], &p->rollout->name);

    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


/* the end of the block: what needed every variant, then the weights */

static char *
ngx_http_dynroute_rollout_finish(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_parse_t *p)
{
    ngx_http_dynroute_rollout_t   *ro;
    ngx_http_dynroute_deferred_t  *at;

    ro = p->rollout;
    at = NULL;

    try {
        if (p->has_primary) {
            at = &p->primary;
            ro->core->set_primary(ngx_http_dynroute_view(at->variant));
        }

        for (auto &s : p->sources) {
            at = &s;
            ro->core->add_source(s.cidr, ngx_http_dynroute_view(s.variant));
        }

        at = NULL;
        ro->core->finish();

        /*
         * The stickiness values are bound to the request's key, unless a
         * key variable is the stickiness cookie itself ($cookie_NAME, whose
         * name nginx compares without case): a later visit's key would be
         * the very value that is signed.
         */

        ro->sticky_bind_key = true;

        for (const auto &k : p->keys) {
            if (ro->sticky.len && k.len == 7 + ro->sticky.len
                && ngx_strncasecmp(k.data, (u_char *) "cookie_", 7) == 0
                && ngx_strncasecmp(k.data + 7, ro->sticky.data,
                                   ro->sticky.len) == 0)
            {
                ro->sticky_bind_key = false;
            }
        }

        /* who may steer is said, never assumed */

        if ((ro->header.len || ro->cookie.len)
            && !ro->core->override_from_set())
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "dynroute rollout \"%V\" in %s:%ui takes overrides "
                          "(%s%V%s%V) but does not say from whom: add "
                          "\"override_from CIDR ...;\" with your testers' "
                          "addresses, or \"override_from all;\" to let "
                          "every client pick a variant", &ro->name, ro->file,
                          ro->line, ro->header.len ? "header " : "",
                          &ro->header,
                          (ro->header.len && ro->cookie.len) ? ", cookie "
                          : (ro->cookie.len ? "cookie " : ""), &ro->cookie);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

    } catch (const dynroute::ConfigError &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "%s in dynroute rollout \"%V\" in %s:%ui", e.what(),
                      &ro->name, at ? at->file : ro->file,
                      at ? at->line : ro->line);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    ro->sources = !p->sources.empty();

    return NGX_CONF_OK;
}




/*
 * After parsing: each variant's upstream is an upstream{} block that may be
 * routed to (the registry's answer).
 */

ngx_int_t
ngx_http_dynroute_rollout_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, ngx_http_dynroute_rollout_t *ro)
    noexcept
{
    ngx_str_t                    hint;
    const char                  *why;
    std::string_view             closest;
    ngx_http_dynroute_target_t  *t;

    try {
        for (auto &v : ro->variants) {
            t = ngx_http_dynroute_target_resolve(dmcf,
                    ngx_http_dynroute_view(v.upstream), &why);

            if (why) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "upstream \"%V\" of variant \"%V\" in dynroute "
                              "rollout \"%V\" %s, in %s:%ui", &v.upstream,
                              &v.name, &ro->name, why, v.file, v.line);
                return NGX_ERROR;
            }

            if (t == NULL || t->kind != NGX_HTTP_DYNROUTE_TARGET_UPSTREAM) {
                closest = (t == NULL)
                          ? ngx_http_dynroute_target_closest(dmcf,
                                ngx_http_dynroute_view(v.upstream), true)
                          : std::string_view();
                hint = ngx_http_dynroute_did_you_mean(cf, closest);

                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "unknown upstream \"%V\"%V of variant \"%V\" "
                              "in dynroute rollout \"%V\": a variant's "
                              "upstream must be an upstream{} block in "
                              "%s:%ui", &v.upstream, &hint, &v.name,
                              &ro->name, v.file, v.line);
                return NGX_ERROR;
            }

            v.uscf = t->uscf;
        }

        if (ngx_http_dynroute_ramp_check(cf, ro) != NGX_OK) {
            return NGX_ERROR;
        }

    } catch (...) {
        (void) ngx_http_dynroute_conf_caught(cf, "dynroute");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * "dynroute_sticky_secret FILE": the key that signs stickiness cookies,
 * derived from the file's bytes (16 at least), read when the configuration
 * is.  The same file on every instance makes their cookies valid on all.
 */

char *
ngx_http_dynroute_sticky_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_dynroute_main_conf_t *dmcf =
        static_cast<ngx_http_dynroute_main_conf_t *>(conf);

    ssize_t     n;
    ngx_fd_t    fd;
    ngx_str_t  *value, file;
    u_char      buf[4096];

    if (dmcf->sticky_secret.len) {
        return const_cast<char *>("is duplicate");
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    fd = ngx_open_file(file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read the sticky secret \"%V\"", &file);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    n = read(fd, buf, sizeof(buf));
    (void) ngx_close_file(fd);

    if (n < 16) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the sticky secret \"%V\" is too short: 16 "
                           "bytes at least (head -c 32 /dev/urandom > %V)",
                           &file, &file);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    dynroute::SipKey key = dynroute::sip_key_from(
        std::string_view(reinterpret_cast<char *>(buf), n));

    ngx_explicit_memzero(buf, sizeof(buf));

    dmcf->sticky_secret = file;
    dmcf->sticky_k0 = key.k0;
    dmcf->sticky_k1 = key.k1;

    return NGX_CONF_OK;
}


/*
 * After parsing: the key that signs the stickiness cookie's values.  Each
 * value is signed when it is issued, for its variant, issue time and key
 * (ngx_http_dynroute_rollout_pick).
 */

ngx_int_t
ngx_http_dynroute_rollout_sign(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, ngx_http_dynroute_rollout_t *ro)
    noexcept
{
    if (ro->sticky.len == 0) {
        return NGX_OK;
    }

    if (dmcf->sticky_secret.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "sticky_cookie of dynroute rollout \"%V\" in %s:%ui "
                      "needs a secret to sign its cookies: add "
                      "\"dynroute_sticky_secret FILE;\" (16 random bytes "
                      "or more, the same file on every instance)",
                      &ro->name, ro->sticky_file, ro->sticky_line);
        return NGX_ERROR;
    }

    try {
        ro->core->set_sticky({dmcf->sticky_k0, dmcf->sticky_k1},
                             ro->sticky_lifetime, ro->sticky_bind_key);

    } catch (...) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "dynroute: out of memory");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* request time */


static void
ngx_http_dynroute_rollout_address(ngx_http_request_t *r,
    dynroute::Address &addr) noexcept
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = reinterpret_cast<struct sockaddr_in *>(r->connection->sockaddr);
        addr.family = 4;
        ngx_memcpy(addr.bytes, &sin->sin_addr, 4);
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = reinterpret_cast<struct sockaddr_in6 *>(
                   r->connection->sockaddr);
        addr.family = 6;
        ngx_memcpy(addr.bytes, &sin6->sin6_addr, 16);
        break;
#endif

    default: /* a unix socket matches no source */
        addr.family = 0;
    }
}


/* the values an override or stickiness may come from, as the request has
 * them: in.header, in.cookie and in.sticky point into v */

typedef struct {
    std::string_view  header;
    std::string_view  cookie;
    std::string_view  sticky;
} ngx_http_dynroute_rollout_values_t;


static void
ngx_http_dynroute_rollout_scan(ngx_http_request_t *r,
    ngx_http_dynroute_rollout_t *ro, dynroute::Rollout::Inputs &in,
    ngx_http_dynroute_rollout_values_t &v) noexcept
{
    /* the first of each wins */

    ngx_http_dynroute_each_header(&r->headers_in.headers,
        [&](ngx_table_elt_t &h) {

        if (h.hash == 0) {
            return;
        }

        if (ro->sticky.len && in.sticky == NULL
            && ngx_http_dynroute_header_is(h, "Cookie")
            && dynroute::find_cookie(ngx_http_dynroute_view(h.value),
                                     ngx_http_dynroute_view(ro->sticky),
                                     v.sticky))
        {
            in.sticky = &v.sticky;
        }

        if (in.header == NULL && ro->header.len
            && ngx_http_dynroute_header_is(h,
                   ngx_http_dynroute_view(ro->header)))
        {
            v.header = ngx_http_dynroute_view(h.value);
            in.header = &v.header;
        }

        if (in.cookie == NULL && ro->cookie.len
            && ngx_http_dynroute_header_is(h, "Cookie")
            && dynroute::find_cookie(ngx_http_dynroute_view(h.value),
                                     ngx_http_dynroute_view(ro->cookie),
                                     v.cookie))
        {
            in.cookie = &v.cookie;
        }
    });
}


/*
 * The variant of a request, and why.  issue, if not NULL, gets the value of
 * the stickiness cookie to set when the weight decided and the rollout has
 * one.
 */

ngx_uint_t
ngx_http_dynroute_rollout_pick(ngx_http_request_t *r,
    ngx_http_dynroute_rollout_t *ro, const dynroute::Split &split,
    dynroute::Rollout::Reason *reason, dynroute::StickyValue *issue)
    noexcept
{
    ngx_uint_t                           v;
    dynroute::Address                    addr;
    ngx_http_variable_value_t           *vv;
    dynroute::Rollout::Inputs            in;
    dynroute::Rollout::Reason            why;
    ngx_http_dynroute_rollout_values_t   values;

    /*
     * The override header and cookie, and the stickiness cookie, if the
     * rollout has them.  An override counts only from a trusted client
     * (the address after realip): checked once one is present, not on
     * every request.
     */

    if (ro->header.len || ro->cookie.len || ro->sticky.len) {
        ngx_http_dynroute_rollout_scan(r, ro, in, values);
    }

    if (ro->sources || ((in.header || in.cookie) && ro->overrides_checked)) {
        ngx_http_dynroute_rollout_address(r, addr);
        in.address = &addr;
    }

    if ((in.header || in.cookie)
        && !ro->core->override_allowed(in.address && addr.family ? &addr
                                                               : NULL))
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "dynroute: rollout \"%V\" ignores overrides from "
                       "%V: not in override_from", &ro->name,
                       &r->connection->addr_text);

        in.header = NULL;
        in.cookie = NULL;
    }

    if (!ro->sources) {
        in.address = NULL;  /* read for override_from only */
    }

    /* the first non-empty key variable, or the client address */

    for (ngx_int_t index : ro->keys) {
        vv = ngx_http_get_indexed_variable(r, index);

        if (vv && !vv->not_found && vv->len) {
            in.key = std::string_view(reinterpret_cast<char *>(vv->data),
                                      vv->len);
            break;
        }
    }

    if (in.key.empty()) {
        in.key = ngx_http_dynroute_view(r->connection->addr_text);
    }

    in.now = ngx_time();

    v = ro->core->pick(in, split, &why);

    if (issue && ro->sticky.len && why == dynroute::Rollout::Reason::weight) {
        *issue = ro->core->sticky_issue(v, in.key, in.now);
    }

    if (reason) {
        *reason = why;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dynroute: rollout \"%V\" variant \"%V\" for key "
                   "\"%*s\"", &ro->name, &ro->variants[v].name,
                   in.key.size(), in.key.data());

    return v;
}
