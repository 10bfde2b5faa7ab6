/*
 * ngx_stream_dynroute_module: dynroute's tables in stream{} (TLS
 * passthrough by SNI).  "dynroute_table NAME [key=$variable] { ... }" in
 * stream{}, read by the core's table builder as the http tables are;
 * "dynroute NAME;" in a stream server{}; $dynroute_upstream,
 * $dynroute_rule and $dynroute_variant; "dynroute_balancer;" in a stream
 * upstream{}; a table's target may be a "dynroute_rollout" (its block and
 * its pick: ngx_stream_dynroute_rollout.cpp).
 *
 * The decision is taken when a variable is first read or by the
 * balancer's peer initialisation (the content phase, after ssl_preread has
 * read the ClientHello), and kept in the session's context slot as a
 * pointer to the rule (for a rollout, to the rule's copy for the variant
 * picked): nothing is allocated per connection.
 *
 * It is built into the same .so as the http modules.  nginx's stream
 * module may not be there (an nginx without it, or its .so loaded after
 * ours): the stream symbols are weak references, NULL then, and every
 * directive refuses to work rather than call them.
 */

#include "ngx_stream_dynroute.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "metrics.hpp"
#include "suggest.hpp"


/* a dynroute_table block while it is read */
typedef struct {
    ngx_stream_dynroute_table_t     *table;
    void                            *stream_ctx;
    dynroute::TableBuilder           builder;
} ngx_stream_dynroute_parse_t;


static ngx_int_t ngx_stream_dynroute_preconfiguration(ngx_conf_t *cf)
    noexcept;
static ngx_int_t ngx_stream_dynroute_postconfiguration(ngx_conf_t *cf)
    noexcept;
static void *ngx_stream_dynroute_create_main_conf(ngx_conf_t *cf) noexcept;
static void *ngx_stream_dynroute_create_srv_conf(ngx_conf_t *cf) noexcept;
static char *ngx_stream_dynroute_table_block(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf) noexcept;
static char *ngx_stream_dynroute_table_rule(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf) noexcept;
static ngx_int_t ngx_stream_dynroute_add_captures(ngx_conf_t *cf,
    ngx_stream_dynroute_parse_t *p);
static char *ngx_stream_dynroute(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
static char *ngx_stream_dynroute_rollout(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
static char *ngx_stream_dynroute_balancer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
static ngx_int_t ngx_stream_dynroute_balancer_init_upstream(ngx_conf_t *cf,
    ngx_stream_upstream_srv_conf_t *us) noexcept;
static ngx_int_t ngx_stream_dynroute_balancer_init_peer(
    ngx_stream_session_t *s, ngx_stream_upstream_srv_conf_t *us) noexcept;
static ngx_int_t ngx_stream_dynroute_upstream_variable(
    ngx_stream_session_t *s, ngx_stream_variable_value_t *v, uintptr_t data)
    noexcept;
static ngx_int_t ngx_stream_dynroute_capture_variable(
    ngx_stream_session_t *s, ngx_stream_variable_value_t *v, uintptr_t data)
    noexcept;


static ngx_command_t  ngx_stream_dynroute_commands[] = {

    { ngx_string("dynroute_table"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE12,
      ngx_stream_dynroute_table_block,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_rollout"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_stream_dynroute_rollout,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_dynroute,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_balancer"),
      NGX_STREAM_UPS_CONF|NGX_CONF_NOARGS,
      ngx_stream_dynroute_balancer,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_dynroute_module_ctx = {
    ngx_stream_dynroute_preconfiguration,   /* preconfiguration */
    ngx_stream_dynroute_postconfiguration,  /* postconfiguration */

    ngx_stream_dynroute_create_main_conf,   /* create main configuration */
    NULL,                                   /* init main configuration */

    ngx_stream_dynroute_create_srv_conf,    /* create server configuration */
    NULL                                    /* merge server configuration */
};


ngx_module_t  ngx_stream_dynroute_module = {
    NGX_MODULE_V1,
    &ngx_stream_dynroute_module_ctx,        /* module context */
    ngx_stream_dynroute_commands,           /* module directives */
    NGX_STREAM_MODULE,                      /* module type */
    NULL,                                   /* init master */
    NULL,                                   /* init module */
    NULL,                                   /* init process */
    NULL,                                   /* init thread */
    NULL,                                   /* exit thread */
    NULL,                                   /* exit process */
    NULL,                                   /* exit master */
    NGX_MODULE_V1_PADDING
};


/* the session's decision when no rule matched and there is no default */
static ngx_stream_dynroute_rule_t  ngx_stream_dynroute_none;


/*
 * Whether nginx's stream module was there when this .so was loaded: its
 * symbols are weak references, NULL when it was not (or came later).
 */

bool
ngx_stream_dynroute_linked() noexcept
{
    return &ngx_stream_module != NULL
           && &ngx_stream_core_module != NULL
           && &ngx_stream_upstream_module != NULL
           && &ngx_stream_add_variable != NULL
           && &ngx_stream_get_variable_index != NULL
           && &ngx_stream_get_indexed_variable != NULL;
}


static char *
ngx_stream_dynroute_not_linked(ngx_conf_t *cf) noexcept
{
    ngx_str_t  *value;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" needs nginx's stream module, which was "
                       "loaded after ngx_http_dynroute_module.so: write "
                       "\"load_module modules/ngx_stream_module.so;\" "
                       "before the load_module line of "
                       "ngx_http_dynroute_module.so", &value[0]);

    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


static ngx_str_t  ngx_stream_dynroute_upstream_name =
    ngx_string("dynroute_upstream");
static ngx_str_t  ngx_stream_dynroute_rule_name = ngx_string("dynroute_rule");
static ngx_str_t  ngx_stream_dynroute_variant_name =
    ngx_string("dynroute_variant");


static ngx_int_t
ngx_stream_dynroute_preconfiguration(ngx_conf_t *cf) noexcept
{
    ngx_stream_variable_t  *var;

    if (!ngx_stream_dynroute_linked()) {
        return NGX_OK;      /* the directives say why they cannot work */
    }

    var = ngx_stream_add_variable(cf, &ngx_stream_dynroute_upstream_name, 0);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_stream_dynroute_upstream_variable;
    var->data = 0;

    var = ngx_stream_add_variable(cf, &ngx_stream_dynroute_rule_name, 0);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_stream_dynroute_upstream_variable;
    var->data = 1;

    var = ngx_stream_add_variable(cf, &ngx_stream_dynroute_variant_name, 0);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_stream_dynroute_upstream_variable;
    var->data = 2;

    return NGX_OK;
}


static void *
ngx_stream_dynroute_create_main_conf(ngx_conf_t *cf) noexcept
{
    ngx_stream_dynroute_main_conf_t  *dmcf;

    dmcf = static_cast<ngx_stream_dynroute_main_conf_t *>(
               ngx_pcalloc(cf->pool, sizeof(ngx_stream_dynroute_main_conf_t)));
    if (dmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&dmcf->tables, cf->pool, 4, sizeof(void *)) != NGX_OK
        || ngx_array_init(&dmcf->uses, cf->pool, 4, sizeof(void *)) != NGX_OK
        || ngx_array_init(&dmcf->balancers, cf->pool, 4, sizeof(void *))
           != NGX_OK
        || ngx_array_init(&dmcf->rollouts, cf->pool, 4, sizeof(void *))
           != NGX_OK)
    {
        return NULL;
    }

    return dmcf;
}


static void *
ngx_stream_dynroute_create_srv_conf(ngx_conf_t *cf) noexcept
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_stream_dynroute_srv_conf_t));
}


/* configuration: dynroute_table NAME [key=$variable] { ... } */

static char *
ngx_stream_dynroute_table_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_stream_dynroute_main_conf_t *dmcf =
        static_cast<ngx_stream_dynroute_main_conf_t *>(conf);

    char                         *rv;
    ngx_str_t                    *value, key;
    ngx_stream_dynroute_table_t  *table;

    if (!ngx_stream_dynroute_linked()) {
        return ngx_stream_dynroute_not_linked(cf);
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    ngx_str_set(&key, "ssl_preread_server_name");

    if (cf->args->nelts == 3) {
        key = value[2];

        if (key.len < 5 || ngx_strncmp(key.data, "key=", 4) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of dynroute_table "
                               "\"%V\": expected key=$variable, such as "
                               "key=$ssl_preread_server_name",
                               &value[2], &value[1]);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        key.data += 4;
        key.len -= 4;

        if (key.data[0] == '$' && key.len > 1) {
            key.data++;
            key.len--;

            if (key.len > 2 && key.data[0] == '{'
                && key.data[key.len - 1] == '}')
            {
                key.data++;
                key.len -= 2;
            }
        } else {
            key.len = 0;
        }

        for (size_t i = 0; i < key.len; i++) {
            u_char  c = key.data[i];

            if (!(c == '_' || (c >= 'a' && c <= 'z')
                  || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            {
                key.len = 0;
                break;
            }
        }

        if (key.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid key \"%V\" of dynroute_table \"%V\": "
                               "expected one variable, such as "
                               "key=$ssl_preread_server_name",
                               &value[2], &value[1]);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }
    }

    table = ngx_http_dynroute_conf_new_named<ngx_stream_dynroute_table_t>(cf,
                &dmcf->tables, "dynroute table");
    if (table == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    table->key = key;
    table->key_index = ngx_stream_get_variable_index(cf, &table->key);
    if (table->key_index == NGX_ERROR) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    try {
        ngx_stream_dynroute_parse_t  p{table, cf->ctx, {}};

        rv = ngx_http_dynroute_conf_block(cf, ngx_stream_dynroute_table_rule,
                                          &p, conf);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        table->core = p.builder.build();

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_dynroute_table_rule(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf) noexcept
{
    ngx_stream_dynroute_parse_t *p =
        static_cast<ngx_stream_dynroute_parse_t *>(cf->ctx);

    ngx_stream_dynroute_table_t  *table = p->table;

    ngx_str_t                    *value;
    dynroute::RuleId              id;
    ngx_stream_dynroute_dest_t   *dest;
    ngx_stream_dynroute_rule_t    rule;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    if (cf->args->nelts == 2 && ngx_http_dynroute_is(value[0], "include")) {
        return ngx_conf_include(cf, dummy, conf);
    }

    if (cf->args->nelts != 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of parameters in dynroute table "
                           "\"%V\": expected a host pattern and a stream "
                           "upstream, such as \"example.com backend;\"",
                           &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (ngx_http_dynroute_is(value[0], "ip")) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ip\" does not apply to the stream dynroute "
                           "table \"%V\": a TLS name is never an address; "
                           "route such clients with \"default\"",
                           &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (value[1].len == 0 || value[1].data[0] == '@'
        || value[1].data[0] == '$')
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid target \"%V\" in dynroute table \"%V\": "
                           "expected the name of a stream upstream{}",
                           &value[1], &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    try {
        id = static_cast<dynroute::RuleId>(table->rules.size());

        dest = NULL;

        for (auto &d : table->dests) {
            if (ngx_http_dynroute_eq(d.target, value[1])) {
                dest = &d;
                break;
            }
        }

        if (dest == NULL) {
            table->dests.push_back({value[1], NULL,
                                    cf->conf_file->file.name.data,
                                    cf->conf_file->line, NULL, NULL});
            dest = &table->dests.back();
        }

        rule.text = value[0];
        rule.dest = dest;
        rule.variants = NULL;
        rule.counters = NULL;
        rule.variant_counters = NULL;
        table->rules.push_back(rule);

        if (ngx_http_dynroute_is(value[0], "default")) {
            p->builder.set_default(id);

        } else {
            p->builder.add(ngx_http_dynroute_view(value[0]), id);

            if (p->builder.regex_count() > table->captures.size()
                && ngx_stream_dynroute_add_captures(cf, p) != NGX_OK)
            {
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }
        }

    } catch (const dynroute::ConflictError &e) {
        ngx_str_t  *prev = &table->rules[e.previous].text;

        if (prev->len == value[0].len
            && ngx_strncasecmp(prev->data, value[0].data, prev->len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate \"%V\" in dynroute table \"%V\": "
                               "keep one of the two lines", &value[0],
                               &table->name);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "host \"%V\" conflicts with \"%V\" in "
                               "dynroute table \"%V\": keep one of them",
                               &value[0], prev, &table->name);
        }

        return NGX_HTTP_DYNROUTE_CONF_ERROR;

    } catch (const dynroute::ConfigError &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in dynroute table \"%V\"",
                           e.what(), &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    return NGX_CONF_OK;
}


/* a regex's named captures become stream variables, as with map */

static ngx_int_t
ngx_stream_dynroute_add_captures(ngx_conf_t *cf,
    ngx_stream_dynroute_parse_t *p)
{
    void                                        *ctx;
    ngx_int_t                                    index;
    ngx_str_t                                    name;
    ngx_stream_variable_t                       *var;
    std::vector<ngx_stream_dynroute_capture_t>   captures;

    const dynroute::Regex &re =
        p->builder.regex(p->builder.regex_count() - 1);

    ctx = cf->ctx;
    cf->ctx = p->stream_ctx;

    for (const auto &g : re.named_groups()) {
        name.len = g.name.size();
        name.data = static_cast<u_char *>(ngx_pnalloc(cf->pool, name.len));
        if (name.data == NULL) {
            cf->ctx = ctx;
            return NGX_ERROR;
        }

        ngx_memcpy(name.data, g.name.data(), name.len);

        var = ngx_stream_add_variable(cf, &name, NGX_STREAM_VAR_CHANGEABLE);
        if (var == NULL) {
            cf->ctx = ctx;
            return NGX_ERROR;
        }

        if (var->get_handler == NULL) {
            var->get_handler = ngx_stream_dynroute_capture_variable;
        }

        index = ngx_stream_get_variable_index(cf, &name);
        if (index == NGX_ERROR) {
            cf->ctx = ctx;
            return NGX_ERROR;
        }

        captures.push_back({g.number, index});
    }

    cf->ctx = ctx;

    p->table->captures.push_back(std::move(captures));

    return NGX_OK;
}


/* "dynroute NAME;" in a stream server{} */

static char *
ngx_stream_dynroute(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    ngx_stream_dynroute_srv_conf_t *dscf =
        static_cast<ngx_stream_dynroute_srv_conf_t *>(conf);

    ngx_str_t                         *value;
    ngx_stream_dynroute_srv_conf_t   **up;
    ngx_stream_dynroute_main_conf_t   *dmcf;

    if (!ngx_stream_dynroute_linked()) {
        return ngx_stream_dynroute_not_linked(cf);
    }

    if (dscf->name.data) {
        return const_cast<char *>("is duplicate");
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    dscf->name = value[1];
    dscf->file = cf->conf_file->file.name.data;
    dscf->line = cf->conf_file->line;

    dmcf = static_cast<ngx_stream_dynroute_main_conf_t *>(
               ngx_stream_conf_get_module_main_conf(cf,
                                                  ngx_stream_dynroute_module));

    up = static_cast<ngx_stream_dynroute_srv_conf_t **>(
             ngx_array_push(&dmcf->uses));
    if (up == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    *up = dscf;

    return NGX_CONF_OK;
}


/* "dynroute_rollout NAME { ... }" in stream{}: the rollouts' file */

static char *
ngx_stream_dynroute_rollout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_stream_dynroute_main_conf_t *dmcf =
        static_cast<ngx_stream_dynroute_main_conf_t *>(conf);

    if (!ngx_stream_dynroute_linked()) {
        return ngx_stream_dynroute_not_linked(cf);
    }

    return ngx_stream_dynroute_rollout_block(cf, &dmcf->rollouts);
}


/* "dynroute_balancer;" in a stream upstream{} */

static char *
ngx_stream_dynroute_balancer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_stream_upstream_server_t      *none;
    ngx_stream_upstream_srv_conf_t    *uscf, **up;
    ngx_stream_dynroute_main_conf_t   *dmcf;

    if (!ngx_stream_dynroute_linked()) {
        return ngx_stream_dynroute_not_linked(cf);
    }

    uscf = static_cast<ngx_stream_upstream_srv_conf_t *>(
               ngx_stream_conf_get_module_srv_conf(cf,
                                                 ngx_stream_upstream_module));

    if (uscf->peer.init_upstream
        == ngx_stream_dynroute_balancer_init_upstream)
    {
        return const_cast<char *>("is duplicate");
    }

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_balancer cannot be combined with "
                           "another balancing method in upstream \"%V\": "
                           "put the method in the upstreams that dynroute "
                           "chooses", &uscf->host);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    uscf->peer.init_upstream = ngx_stream_dynroute_balancer_init_upstream;

    /* a stand-in, so that "no servers are inside upstream" does not fire;
     * init_upstream checks that no "server" line came with it */

    if (uscf->servers == NULL) {
        uscf->servers = ngx_array_create(cf->pool, 1,
                                         sizeof(ngx_stream_upstream_server_t));
        if (uscf->servers == NULL) {
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }
    }

    none = static_cast<ngx_stream_upstream_server_t *>(
               ngx_array_push(uscf->servers));
    if (none == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    ngx_memzero(none, sizeof(ngx_stream_upstream_server_t));

    dmcf = static_cast<ngx_stream_dynroute_main_conf_t *>(
               ngx_stream_conf_get_module_main_conf(cf,
                                                  ngx_stream_dynroute_module));

    up = static_cast<ngx_stream_upstream_srv_conf_t **>(
             ngx_array_push(&dmcf->balancers));
    if (up == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    *up = uscf;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_dynroute_balancer_init_upstream(ngx_conf_t *cf,
    ngx_stream_upstream_srv_conf_t *us) noexcept
{
    ngx_uint_t                     i;
    ngx_stream_upstream_server_t  *server;

    server = static_cast<ngx_stream_upstream_server_t *>(us->servers->elts);

    for (i = 0; i < us->servers->nelts; i++) {
        if (server[i].naddrs == 0 && server[i].name.len == 0) {
            continue;   /* the stand-in */
        }

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "stream upstream \"%V\" has both dynroute_balancer and "
                      "\"server\" lines: its servers are those of the "
                      "upstream that dynroute chooses, remove them, "
                      "in %s:%ui", &us->host, us->file_name, us->line);
        return NGX_ERROR;
    }

    us->peer.init = ngx_stream_dynroute_balancer_init_peer;

    return NGX_OK;
}


/* the checks, once everything in stream{} is read */

ngx_stream_upstream_srv_conf_t *
ngx_stream_dynroute_find_upstream(ngx_array_t *upstreams,
    const ngx_str_t &name) noexcept
{
    ngx_uint_t                        i;
    ngx_stream_upstream_srv_conf_t  **up;

    up = static_cast<ngx_stream_upstream_srv_conf_t **>(upstreams->elts);

    for (i = 0; i < upstreams->nelts; i++) {
        if ((up[i]->flags & NGX_STREAM_UPSTREAM_CREATE)
            && ngx_http_dynroute_eq(up[i]->host, name))
        {
            return up[i];
        }
    }

    return NULL;
}


/* whether http{} (read before stream{}) has an upstream of that name */

bool
ngx_stream_dynroute_http_upstream(ngx_conf_t *cf, const ngx_str_t &name)
    noexcept
{
    ngx_uint_t                       i;
    ngx_http_upstream_srv_conf_t   **up;
    ngx_http_upstream_main_conf_t   *umcf;

    if (cf->cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return false;
    }

    umcf = static_cast<ngx_http_upstream_main_conf_t *>(
               ngx_http_cycle_get_module_main_conf(cf->cycle,
                                                   ngx_http_upstream_module));
    if (umcf == NULL) {
        return false;
    }

    up = static_cast<ngx_http_upstream_srv_conf_t **>(umcf->upstreams.elts);

    for (i = 0; i < umcf->upstreams.nelts; i++) {
        if ((up[i]->flags & NGX_HTTP_UPSTREAM_CREATE)
            && ngx_http_dynroute_eq(up[i]->host, name))
        {
            return true;
        }
    }

    return false;
}


bool
ngx_stream_dynroute_variable_exists(ngx_conf_t *cf, const ngx_str_t &name)
    noexcept
{
    ngx_uint_t                    i;
    ngx_hash_key_t               *key;
    ngx_stream_variable_t        *pv;
    ngx_stream_core_main_conf_t  *cmcf;

    cmcf = static_cast<ngx_stream_core_main_conf_t *>(
               ngx_stream_conf_get_module_main_conf(cf,
                                                    ngx_stream_core_module));

    key = static_cast<ngx_hash_key_t *>(cmcf->variables_keys->keys.elts);

    for (i = 0; i < cmcf->variables_keys->keys.nelts; i++) {
        if (key[i].key.len == name.len
            && ngx_strncasecmp(key[i].key.data, name.data, name.len) == 0)
        {
            return true;
        }
    }

    pv = static_cast<ngx_stream_variable_t *>(cmcf->prefix_variables.elts);

    for (i = 0; i < cmcf->prefix_variables.nelts; i++) {
        if (name.len >= pv[i].name.len
            && ngx_strncasecmp(name.data, pv[i].name.data, pv[i].name.len)
               == 0)
        {
            return true;
        }
    }

    return false;
}


bool
ngx_stream_dynroute_is_balancer(ngx_stream_upstream_srv_conf_t *uscf)
    noexcept
{
    return uscf->peer.init_upstream
           == ngx_stream_dynroute_balancer_init_upstream;
}


ngx_stream_dynroute_main_conf_t *
ngx_stream_dynroute_cycle_conf(ngx_cycle_t *cycle) noexcept
{
    ngx_stream_conf_ctx_t  *ctx;

    if (!ngx_stream_dynroute_linked() || cycle->conf_ctx == NULL) {
        return NULL;
    }

    ctx = reinterpret_cast<ngx_stream_conf_ctx_t *>(
              cycle->conf_ctx[ngx_stream_module.index]);

    if (ctx == NULL) {
        return NULL;   /* no stream{} */
    }

    return static_cast<ngx_stream_dynroute_main_conf_t *>(
               ctx->main_conf[ngx_stream_dynroute_module.ctx_index]);
}


/* a rollout's rule: a copy per variant, each to the variant's upstream */

ngx_int_t
ngx_stream_dynroute_rule_variants(ngx_pool_t *pool,
    ngx_stream_dynroute_rule_t *rule) noexcept
{
    size_t                          i, n;
    ngx_stream_dynroute_dest_t     *d;
    ngx_stream_dynroute_rollout_t  *ro;

    ro = rule->dest->rollout;
    n = ro->variants.size();

    d = static_cast<ngx_stream_dynroute_dest_t *>(
            ngx_pcalloc(pool, n * sizeof(ngx_stream_dynroute_dest_t)));
    rule->variants = static_cast<ngx_stream_dynroute_rule_t *>(
                         ngx_pcalloc(pool,
                                     n * sizeof(ngx_stream_dynroute_rule_t)));
    if (d == NULL || rule->variants == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        auto  &v = ro->variants[i];

        d[i].target = v.upstream;
        d[i].uscf = v.uscf;
        d[i].file = v.file;
        d[i].line = v.line;
        d[i].variant = &v.name;

        rule->variants[i].text = rule->text;
        rule->variants[i].dest = &d[i];
    }

    return NGX_OK;
}


/*
 * " (did you mean ...?)" for name, an unknown target of a table or an
 * unknown table: the closest of the stream upstreams a table may route to
 * (upstreams; NULL for a table), then of the named blocks in blocks (the
 * rollouts, or the tables), or "".
 */

template <typename T>
static ngx_str_t
ngx_stream_dynroute_hint(ngx_conf_t *cf, const ngx_str_t &name,
    ngx_array_t *upstreams, ngx_array_t *blocks) noexcept
{
    ngx_uint_t                        i;
    T                               **bp;
    ngx_stream_upstream_srv_conf_t  **up;

    try {
        dynroute::ClosestName  closest(ngx_http_dynroute_view(name));

        up = upstreams ? static_cast<ngx_stream_upstream_srv_conf_t **>(
                             upstreams->elts)
                       : NULL;

        for (i = 0; up && i < upstreams->nelts; i++) {
            if ((up[i]->flags & NGX_STREAM_UPSTREAM_CREATE)
                && !ngx_stream_dynroute_is_balancer(up[i]))
            {
                closest.consider(ngx_http_dynroute_view(up[i]->host));
            }
        }

        bp = blocks ? static_cast<T **>(blocks->elts) : NULL;

        for (i = 0; bp && i < blocks->nelts; i++) {
            closest.consider(ngx_http_dynroute_view(bp[i]->name));
        }

        return ngx_http_dynroute_did_you_mean(cf, closest.best());

    } catch (...) {
        return ngx_http_dynroute_did_you_mean(cf, std::string_view());
    }
}


/* "dynroute NAME;" names no stream table */

static void
ngx_stream_dynroute_unknown_table(ngx_conf_t *cf,
    ngx_stream_dynroute_main_conf_t *dmcf,
    ngx_stream_dynroute_srv_conf_t *dscf) noexcept
{
    ngx_str_t  hint;

    hint = ngx_stream_dynroute_hint<ngx_stream_dynroute_table_t>(cf,
               dscf->name, NULL, &dmcf->tables);

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "unknown dynroute table \"%V\"%V: declare "
                  "\"dynroute_table %V { ... }\" in stream{}, "
                  "in %s:%ui", &dscf->name, &hint, &dscf->name,
                  dscf->file, dscf->line);
}


static ngx_int_t
ngx_stream_dynroute_check_table(ngx_conf_t *cf,
    ngx_stream_dynroute_table_t *table, ngx_array_t *upstreams,
    ngx_array_t *rollouts) noexcept
{
    ngx_str_t                        hint;
    ngx_stream_upstream_srv_conf_t  *uscf;

    if (!ngx_stream_dynroute_variable_exists(cf, table->key)) {
        if (ngx_http_dynroute_is(table->key, "ssl_preread_server_name")) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "dynroute table \"%V\" reads "
                          "$ssl_preread_server_name, which nginx lacks: "
                          "build nginx --with-stream_ssl_preread_module, "
                          "or give the table another key=$variable, "
                          "in %s:%ui", &table->name, table->file,
                          table->line);

        } else {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown variable \"$%V\" in key= of dynroute "
                          "table \"%V\": use a stream variable, such as "
                          "key=$ssl_preread_server_name, in %s:%ui",
                          &table->key, &table->name, table->file,
                          table->line);
        }

        return NGX_ERROR;
    }

    for (auto &d : table->dests) {
        d.rollout = ngx_http_dynroute_find_named<
                        ngx_stream_dynroute_rollout_t>(*rollouts, d.target);
        if (d.rollout) {
            continue;
        }

        uscf = ngx_stream_dynroute_find_upstream(upstreams, d.target);

        if (uscf == NULL && ngx_stream_dynroute_http_upstream(cf, d.target)) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"%V\" in dynroute table \"%V\" is an http "
                          "upstream: a stream table routes to stream "
                          "upstreams, declare \"upstream %V { ... }\" in "
                          "stream{}, in %s:%ui", &d.target, &table->name,
                          &d.target, d.file, d.line);
            return NGX_ERROR;
        }

        if (uscf == NULL) {
            hint = ngx_stream_dynroute_hint<ngx_stream_dynroute_rollout_t>(
                       cf, d.target, upstreams, rollouts);
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown stream upstream \"%V\"%V in dynroute "
                          "table \"%V\": declare \"upstream %V { server "
                          "...; }\" in stream{}, in %s:%ui", &d.target, &hint,
                          &table->name, &d.target, d.file, d.line);
            return NGX_ERROR;
        }

        if (uscf->peer.init_upstream
            == ngx_stream_dynroute_balancer_init_upstream)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "stream upstream \"%V\" in dynroute table \"%V\" "
                          "has dynroute_balancer: route to the upstreams "
                          "with servers, in %s:%ui", &d.target,
                          &table->name, d.file, d.line);
            return NGX_ERROR;
        }

        d.uscf = uscf;
    }

    for (auto &r : table->rules) {
        if (r.dest->rollout
            && ngx_stream_dynroute_rule_variants(cf->pool, &r) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_dynroute_postconfiguration(ngx_conf_t *cf) noexcept
{
    ngx_uint_t                         i;
    ngx_stream_dynroute_table_t      **tp;
    ngx_stream_dynroute_rollout_t    **rp;
    ngx_stream_upstream_srv_conf_t   **bp;
    ngx_stream_dynroute_srv_conf_t   **sp;
    ngx_stream_upstream_main_conf_t   *umcf;
    ngx_stream_dynroute_main_conf_t   *dmcf;

    if (!ngx_stream_dynroute_linked()) {
        return NGX_OK;
    }

    dmcf = static_cast<ngx_stream_dynroute_main_conf_t *>(
               ngx_stream_conf_get_module_main_conf(cf,
                                                  ngx_stream_dynroute_module));
    umcf = static_cast<ngx_stream_upstream_main_conf_t *>(
               ngx_stream_conf_get_module_main_conf(cf,
                                                  ngx_stream_upstream_module));

    rp = static_cast<ngx_stream_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        rp[i]->index = i;

        if (ngx_stream_dynroute_rollout_check(cf, rp[i], &umcf->upstreams)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    tp = static_cast<ngx_stream_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        if (ngx_stream_dynroute_check_table(cf, tp[i], &umcf->upstreams,
                                            &dmcf->rollouts)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    sp = static_cast<ngx_stream_dynroute_srv_conf_t **>(dmcf->uses.elts);

    for (i = 0; i < dmcf->uses.nelts; i++) {
        sp[i]->table =
            ngx_http_dynroute_find_named<ngx_stream_dynroute_table_t>(
                dmcf->tables, sp[i]->name);

        if (sp[i]->table == NULL) {
            ngx_stream_dynroute_unknown_table(cf, dmcf, sp[i]);
            return NGX_ERROR;
        }
    }

    bp = static_cast<ngx_stream_upstream_srv_conf_t **>(dmcf->balancers.elts);

    for (i = 0; i < dmcf->balancers.nelts; i++) {
        if (bp[i]->peer.init_upstream
                != ngx_stream_dynroute_balancer_init_upstream
            || bp[i]->shm_zone)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "stream upstream \"%V\" has dynroute_balancer and "
                          "a balancing method or zone: put those in the "
                          "upstreams that dynroute chooses, in %s:%ui",
                          &bp[i]->host, bp[i]->file_name, bp[i]->line);
            return NGX_ERROR;
        }
    }

    if (ngx_stream_dynroute_runtime_init(cf, dmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_stream_dynroute_metrics_log_init(cf, dmcf);
}


/* connection time: nothing here allocates */


/*
 * The session's rule, decided once: the table's key (the ClientHello's
 * name by default) looked up; the named captures of a regex that matched
 * set in the session's variables.  NULL: the server has no table, or no
 * rule matched and the table has no default.
 */

static const ngx_stream_dynroute_rule_t *
ngx_stream_dynroute_decide(ngx_stream_session_t *s) noexcept
{
    ngx_str_t                        key;
    ngx_connection_t                *c;
    dynroute::Decision               d;
    ngx_stream_variable_value_t     *v, *cv;
    ngx_stream_dynroute_rule_t      *rule;
    ngx_stream_dynroute_table_t     *table;
    ngx_stream_dynroute_srv_conf_t  *dscf;
    ngx_stream_dynroute_main_conf_t *dmcf;

    rule = static_cast<ngx_stream_dynroute_rule_t *>(
               ngx_stream_get_module_ctx(s, ngx_stream_dynroute_module));

    if (rule) {
        return (rule == &ngx_stream_dynroute_none) ? NULL : rule;
    }

    dscf = static_cast<ngx_stream_dynroute_srv_conf_t *>(
               ngx_stream_get_module_srv_conf(s, ngx_stream_dynroute_module));

    table = dscf->table;

    if (table == NULL) {
        return NULL;
    }

    c = s->connection;

    v = ngx_stream_get_indexed_variable(s, table->key_index);

    if (v == NULL || v->not_found) {
        ngx_str_null(&key);

    } else {
        key.data = v->data;
        key.len = v->len;
    }

    /* a key that could be no host name matches no name: the default */

    if (dynroute::classify_key(ngx_http_dynroute_view(key))
        != dynroute::KeyValue::name)
    {
        ngx_str_null(&key);
    }

    if (table->counters && key.len == 0) {
        ngx_http_dynroute_count(
            &table->counters[dynroute::metrics::x_unnamed]);
    }

    /* a runtime host of the table first, as in http */

    dmcf = static_cast<ngx_stream_dynroute_main_conf_t *>(
               ngx_stream_get_module_main_conf(s, ngx_stream_dynroute_module));

    rule = (key.len && dmcf->runtime)
           ? ngx_stream_dynroute_runtime_host(dmcf->runtime, table, key)
           : NULL;

    if (rule == NULL) {
        d = table->core.find(ngx_http_dynroute_view(key));

        if (d.error()) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "dynroute: a regex of table \"%V\" failed on "
                          "\"%V\", the default applies", &table->name, &key);

            if (table->counters) {
                ngx_http_dynroute_count(
                    &table->counters[dynroute::metrics::x_regex_errors]);
            }
        }

        if (d.rule == dynroute::no_rule) {
            if (table->counters) {
                ngx_http_dynroute_count(
                    &table->counters[dynroute::metrics::x_unrouted]);
            }

            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "dynroute: no rule of table \"%V\" matches \"%V\" "
                          "and it has no default: closing the connection of "
                          "client %V", &table->name, &key, &c->addr_text);

            ngx_stream_set_ctx(s, &ngx_stream_dynroute_none,
                               ngx_stream_dynroute_module);
            return NULL;
        }

        if (d.regex >= 0
            && static_cast<size_t>(d.regex) < table->captures.size())
        {
            for (const auto &cap : table->captures[d.regex]) {
                size_t  b, e;

                cv = &s->variables[cap.index];

                if (table->core.group(cap.group, b, e)) {
                    cv->data = key.data + b;
                    cv->len = e - b;
                    cv->valid = 1;
                    cv->no_cacheable = 0;
                    cv->not_found = 0;

                } else {
                    cv->valid = 0;
                    cv->not_found = 1;
                }
            }
        }

        rule = &table->rules[d.rule];
    }

    if (rule->variants) {
        /* a key that reads $dynroute_* (through a map) finds nothing */
        ngx_stream_set_ctx(s, &ngx_stream_dynroute_none,
                           ngx_stream_dynroute_module);

        rule = &rule->variants[ngx_stream_dynroute_rollout_pick(s,
                   rule->dest->rollout,
                   ngx_stream_dynroute_runtime_split(dmcf->runtime,
                                                     rule->dest->rollout))];
    }

    ngx_stream_set_ctx(s, rule, ngx_stream_dynroute_module);

    return rule;
}


/* $dynroute_upstream (data 0), $dynroute_rule (data 1), $dynroute_variant
 * (data 2: not found but for a rollout's variant) */

static ngx_int_t
ngx_stream_dynroute_upstream_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data) noexcept
{
    const ngx_str_t                   *str;
    const ngx_stream_dynroute_rule_t  *rule;

    rule = ngx_stream_dynroute_decide(s);

    if (rule == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    str = (data == 2) ? rule->dest->variant
          : (data == 1) ? &rule->text : &rule->dest->target;

    if (str == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = str->data;
    v->len = str->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* a named capture read before the decision: decide, which sets it */

static ngx_int_t
ngx_stream_dynroute_capture_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data) noexcept
{
    (void) ngx_stream_dynroute_decide(s);

    if (!v->valid) {
        v->not_found = 1;
    }

    return NGX_OK;
}


/* the balancer hands the connection to the chosen upstream's own peers */

static ngx_int_t
ngx_stream_dynroute_balancer_init_peer(ngx_stream_session_t *s,
    ngx_stream_upstream_srv_conf_t *us) noexcept
{
    ngx_stream_upstream_srv_conf_t    *chosen;
    const ngx_stream_dynroute_rule_t  *rule;

    rule = ngx_stream_dynroute_decide(s);

    if (rule == NULL) {
        ngx_stream_dynroute_srv_conf_t *dscf =
            static_cast<ngx_stream_dynroute_srv_conf_t *>(
                ngx_stream_get_module_srv_conf(s, ngx_stream_dynroute_module));

        if (dscf->table == NULL) {
            ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                          "dynroute: stream upstream \"%V\" is used in a "
                          "server without \"dynroute TABLE;\"", &us->host);
        }

        return NGX_ERROR;
    }

    chosen = rule->dest->uscf;

    s->upstream->upstream = chosen;

    return chosen->peer.init(s, chosen);
}
