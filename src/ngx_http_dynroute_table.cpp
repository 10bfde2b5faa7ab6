/*
 * dynroute_table NAME { PATTERN TARGET; ... }: read as map{} is, line by
 * line, each pattern handed to the core's table builder (which checks it
 * and its conflicts with nginx's own rules), each regex's named captures
 * made variables.  "dynroute NAME": the table in effect in a server or a
 * location; resolved once everything is read
 * (ngx_http_dynroute_check.cpp).
 */

#include <algorithm>
#include <deque>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ngx_http_dynroute_table.hpp"
#include "ngx_http_dynroute_variables.hpp"
#include "table.hpp"


/* A dynroute_table block while it is read. */
typedef struct {
    ngx_http_dynroute_table_t *table;
    void                      *http_ctx;  /* the http{} context it replaced */
    ngx_pool_t                *pool;      /* the cycle's pool, which the
                                             block's temporary pool replaced */
    dynroute::TableBuilder     builder;

    /* the rules as they are read: a deque grows without copying, and
     * without a vector's doubling slack, however many there are */
    std::deque<ngx_http_dynroute_rule_t>  rules;

    /* the table's dests by their target as written */
    std::unordered_map<std::string_view, ngx_http_dynroute_dest_t *>  dests;
    u_char                    *file;      /* of the last rule, as nginx has
                                             it */

    /* where the last line of the block ended (or its "{" did): where a
     * rule lacking its ";" was written */
    ngx_http_dynroute_conf_mark_t  mark;
} ngx_http_dynroute_table_parse_t;


static char *ngx_http_dynroute_table_key(ngx_conf_t *cf,
    ngx_http_dynroute_table_t *table) noexcept;
static char *ngx_http_dynroute_table_parse(ngx_conf_t *cf,
    ngx_http_dynroute_table_t *table, ngx_pool_t *pool, void *conf) noexcept;
static char *ngx_http_dynroute_table_rule(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf) noexcept;
static char *ngx_http_dynroute_table_arity(ngx_conf_t *cf,
    ngx_http_dynroute_table_parse_t *p) noexcept;
static ngx_uint_t ngx_http_dynroute_table_unended(ngx_conf_t *cf,
    ngx_http_dynroute_table_parse_t *p) noexcept;
static void ngx_http_dynroute_table_unread(ngx_pool_t *pool,
    ngx_array_t *args) noexcept;
static ngx_http_dynroute_dest_t *ngx_http_dynroute_table_dest(
    ngx_http_dynroute_table_parse_t *p, const ngx_str_t &target,
    dynroute::RuleId id);
static void ngx_http_dynroute_table_written(ngx_conf_t *cf,
    ngx_http_dynroute_table_parse_t *p, dynroute::RuleId id);
static ngx_int_t ngx_http_dynroute_add_captures(ngx_conf_t *cf,
    ngx_http_dynroute_table_parse_t *p);
static ngx_int_t ngx_http_dynroute_add_capture(ngx_conf_t *cf,
    const dynroute::NamedGroup &g,
    std::vector<ngx_http_dynroute_capture_t> &captures);


/* strings copied into blocks of about 64 KB, a longer one in its own */

ngx_str_t
ngx_http_dynroute_arena_t::copy(const ngx_str_t &s)
{
    static constexpr size_t  block = 65536 - 64;

    size_t      n;
    u_char     *p;
    ngx_str_t   c;

    n = s.len + 1;

    if (n > block / 4) {
        std::unique_ptr<u_char[]>  own(new u_char[n]);

        p = own.get();
        blocks_.push_back(std::move(own));

    } else {
        if (n > left_) {
            std::unique_ptr<u_char[]>  b(new u_char[block]);

            pos_ = b.get();
            left_ = block;
            blocks_.push_back(std::move(b));
        }

        p = pos_;
        pos_ += n;
        left_ -= n;
    }

    ngx_memcpy(p, s.data, s.len);
    p[s.len] = '\0';

    c.data = p;
    c.len = s.len;

    return c;
}


/* configuration */


/*
 * The block is read into a temporary pool, as map{} is: nginx's tokens of
 * a million lines are freed once the table has copied what it keeps.
 */

char *
ngx_http_dynroute_table_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_dynroute_main_conf_t *dmcf =
        static_cast<ngx_http_dynroute_main_conf_t *>(conf);

    char                       *rv;
    ngx_pool_t                 *pool, *save;
    ngx_http_dynroute_table_t  *table;

    table = ngx_http_dynroute_conf_new_named<ngx_http_dynroute_table_t>(cf,
                &dmcf->tables, "dynroute table");
    if (table == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    table->index = dmcf->tables.nelts - 1;
    table->key_index = NGX_ERROR;

    if (cf->args->nelts == 3
        && ngx_http_dynroute_table_key(cf, table) != NGX_CONF_OK)
    {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, cf->log);
    if (pool == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    save = cf->pool;
    cf->pool = pool;

    rv = ngx_http_dynroute_table_parse(cf, table, save, conf);

    cf->pool = save;
    ngx_destroy_pool(pool);

    return rv;
}


/*
 * "key=$name" or "key=${name}": one variable, whose value the table
 * matches instead of the Host.  Whether nginx knows it is checked once
 * everything is read (ngx_http_dynroute_check.cpp), where a message can
 * still say where it was written.
 */

static char *
ngx_http_dynroute_table_key(ngx_conf_t *cf, ngx_http_dynroute_table_t *table)
    noexcept
{
    u_char     *p, *end;
    ngx_str_t  *value, name;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    if (value[2].len < 4 || ngx_strncmp(value[2].data, "key=", 4) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" of dynroute table "
                           "\"%V\": expected key=$variable, such as "
                           "key=$http_x_tenant", &value[2], &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    name.data = value[2].data + 4;
    name.len = value[2].len - 4;

    if (name.len >= 2 && name.data[0] == '$') {
        name.data++;
        name.len--;

        if (name.data[0] == '{') {
            if (name.len < 3 || name.data[name.len - 1] != '}') {
                name.len = 0;

            } else {
                name.data++;
                name.len -= 2;
            }
        }

    } else {
        name.len = 0;
    }

    end = name.data + name.len;

    for (p = name.data; p < end; p++) {
        if (*p != '_' && !dynroute::is_alpha(static_cast<char>(*p))
            && !dynroute::is_digit(static_cast<char>(*p)))
        {
            name.len = 0;
            break;
        }
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key \"%V\" of dynroute table \"%V\": "
                           "expected one variable, such as key=$http_x_tenant; "
                           "to key by several values or by part of one, make "
                           "them one variable with map and name it",
                           &value[2], &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    for (p = name.data; p < end && *p >= '0' && *p <= '9'; p++) {
        /* void */
    }

    if (p == end) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key \"%V\" of dynroute table \"%V\": "
                           "$%V is a capture of the last regex matched, "
                           "not a variable: name the group, as in "
                           "(?<tenant>...), and write key=$tenant",
                           &value[2], &table->name, &name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (dynroute::equal_caseless(ngx_http_dynroute_view(name).substr(0, 9),
                                 "dynroute_"))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key \"%V\" of dynroute table \"%V\": "
                           "$%V is the outcome of a decision, not a value "
                           "of the request to decide by: key the table by "
                           "one, such as key=$http_x_tenant",
                           &value[2], &table->name, &name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    /* "$name" as messages and the API name it */

    table->key.len = name.len + 1;
    table->key.data = static_cast<u_char *>(ngx_pnalloc(cf->pool,
                                                        table->key.len));
    if (table->key.data == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    table->key.data[0] = '$';
    ngx_memcpy(table->key.data + 1, name.data, name.len);

    table->key_index = ngx_http_get_variable_index(cf, &name);
    if (table->key_index == NGX_ERROR) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* cf->pool is the temporary pool, pool the cycle's */

static char *
ngx_http_dynroute_table_parse(ngx_conf_t *cf, ngx_http_dynroute_table_t *table,
    ngx_pool_t *pool, void *conf) noexcept
{
    char  *rv;

    try {
        ngx_http_dynroute_table_parse_t  p{table, cf->ctx, pool, {}, {},
                                           {}, NULL, {}};

        ngx_http_dynroute_conf_mark(cf, &p.mark);

        rv = ngx_http_dynroute_conf_block(cf, ngx_http_dynroute_table_rule,
                                          &p, conf);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        table->core = p.builder.build();
        table->rules.assign(p.rules.begin(), p.rules.end());

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_dynroute_table_rule(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf) noexcept
{
    ngx_http_dynroute_table_parse_t *p =
        static_cast<ngx_http_dynroute_table_parse_t *>(cf->ctx);

    ngx_http_dynroute_table_t  *table = p->table;

    u_char                     *file;
    ngx_str_t                  *value;
    ngx_uint_t                  line, named;
    dynroute::RuleId            id;
    ngx_http_dynroute_rule_t    rule{}, *prev;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    if (cf->args->nelts == 2 && ngx_http_dynroute_is(value[0], "include")) {
        if (ngx_conf_include(cf, dummy, conf) != NGX_CONF_OK) {
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        ngx_http_dynroute_conf_mark(cf, &p->mark);
        return NGX_CONF_OK;
    }

    if (cf->args->nelts != 2) {
        return ngx_http_dynroute_table_arity(cf, p);
    }

    named = (value[1].len && value[1].data[0] == '@');

    if (value[1].len == 0 || (named && value[1].len == 1)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid target \"%V\" in dynroute table \"%V\"",
                           &value[1], &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    try {
        id = static_cast<dynroute::RuleId>(p->rules.size());

        if (id == dynroute::no_rule) {
            throw std::length_error("dynroute table");
        }

        /* what the table keeps of the line: its tokens are freed */

        rule.text = table->arena.copy(value[0]);
        rule.dest = ngx_http_dynroute_table_dest(p, value[1], id);
        ngx_http_dynroute_table_written(cf, p, id);
        p->rules.push_back(rule);

        if (ngx_http_dynroute_is(value[0], "default")) {
            p->builder.set_default(id);

        } else if (ngx_http_dynroute_is(value[0], "ip")
                   && table->key.len)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"ip\" in dynroute table \"%V\", which "
                               "matches key=%V: the ip rule is for the Host "
                               "of tables without key=; write \"\\ip\" "
                               "for the value \"ip\"",
                               &table->name, &table->key);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;

        } else if (ngx_http_dynroute_is(value[0], "ip")) {
            p->builder.set_ip(id);

        } else {
            p->builder.add(ngx_http_dynroute_view(rule.text), id);

            if (p->builder.regex_count() > table->captures.size()
                && ngx_http_dynroute_add_captures(cf, p) != NGX_OK)
            {
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }
        }

    } catch (const dynroute::ConflictError &e) {
        prev = &p->rules[e.previous];
        ngx_http_dynroute_table_where(table, e.previous, &file, &line);

        if (ngx_http_dynroute_eq(prev->text, value[0])) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate \"%V\" in dynroute table \"%V\", "
                               "first defined in %s:%ui",
                               &value[0], &table->name, file, line);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "host \"%V\" conflicts with \"%V\" in "
                               "dynroute table \"%V\", defined in %s:%ui",
                               &value[0], &prev->text, &table->name,
                               file, line);
        }

        return NGX_HTTP_DYNROUTE_CONF_ERROR;

    } catch (const dynroute::ConfigError &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in dynroute table \"%V\"",
                           e.what(), &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    ngx_http_dynroute_table_unread(cf->pool, cf->args);
    ngx_http_dynroute_conf_mark(cf, &p->mark);

    return NGX_CONF_OK;
}


/* a line of the block with other than two parameters */

static char *
ngx_http_dynroute_table_arity(ngx_conf_t *cf,
    ngx_http_dynroute_table_parse_t *p) noexcept
{
    ngx_str_t   *value;
    ngx_uint_t   line;

    value = static_cast<ngx_str_t *>(cf->args->elts);
    line = ngx_http_dynroute_table_unended(cf, p);

    if (line) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "missing \";\" after \"%V %V\" in dynroute table "
                      "\"%V\" in %s:%ui", &value[0], &value[1],
                      &p->table->name, cf->conf_file->file.name.data, line);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid number of parameters in dynroute table "
                       "\"%V\": expected a host pattern and a target",
                       &p->table->name);
    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


/*
 * The line of a rule whose ";" is missing, so that the next rule's
 * parameters were read as more of its own; 0 if that is not what it looks
 * like.  nginx keeps no line per parameter: the rule is read again from
 * the file, from where the last line of the block ended (the start of the
 * file for the first rule of an included file).  It looks like it when
 * the third parameter begins on a later line than the second, or when the
 * parameters come in pairs and the third is a host pattern.
 */

static ngx_uint_t
ngx_http_dynroute_table_unended(ngx_conf_t *cf,
    ngx_http_dynroute_table_parse_t *p) noexcept
{
    ngx_str_t  *value;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    if (cf->args->nelts < 3) {
        return 0;
    }

    try {
        auto lines = ngx_http_dynroute_conf_lines(cf, &p->mark);

        if (lines.empty()) {
            return 0;
        }

        if (lines[2] > lines[1]) {
            return lines[1];
        }

        if (cf->args->nelts % 2 == 0) {
            if (!ngx_http_dynroute_is(value[2], "default")
                && !ngx_http_dynroute_is(value[2], "ip"))
            {
                (void) dynroute::parse_pattern(
                           ngx_http_dynroute_view(value[2]));
            }

            return lines[1];
        }

    } catch (...) {
        /* not a host pattern, or no memory to tell */
    }

    return 0;
}


/*
 * The table has copied what it keeps of the line: its tokens go back to the
 * temporary pool, so that the pool stays a block or two however many lines
 * the block has (freed at its end instead, 42 MB of tokens would leave holes
 * in the heap between what the table keeps).  nginx's parser allocates the
 * tokens of a line one after the other and nothing else in between: each is
 * the last allocation of its block, undone from the last token back.  A
 * token found otherwise (escapes make it shorter than its allocation; a
 * pool that allocates each piece apart) is left to the pool's end.
 */

static void
ngx_http_dynroute_table_unread(ngx_pool_t *pool, ngx_array_t *args) noexcept
{
    u_char      *end;
    ngx_str_t   *value;
    ngx_uint_t   i;
    ngx_pool_t  *b;

    value = static_cast<ngx_str_t *>(args->elts);

    for (i = args->nelts; i-- > 0; /* void */) {
        end = value[i].data + value[i].len + 1;

        for (b = pool; b; b = b->d.next) {
            if (b->d.last == end
                && value[i].data >= reinterpret_cast<u_char *>(b)
                && value[i].data < b->d.end)
            {
                b->d.last = value[i].data;
                break;
            }
        }
    }
}


/* the one dest of the table for target, made when first named (by id) */

static ngx_http_dynroute_dest_t *
ngx_http_dynroute_table_dest(ngx_http_dynroute_table_parse_t *p,
    const ngx_str_t &target, dynroute::RuleId id)
{
    ngx_http_dynroute_dest_t   dest{};
    ngx_http_dynroute_table_t *table = p->table;

    auto d = p->dests.find(ngx_http_dynroute_view(target));
    if (d != p->dests.end()) {
        return d->second;
    }

    dest.target = table->arena.copy(target);
    dest.named = (target.data[0] == '@');
    dest.first = id;

    table->dests.push_back(dest);
    p->dests.emplace(ngx_http_dynroute_view(table->dests.back().target),
                     &table->dests.back());

    return &table->dests.back();
}


/* where rule id is written: its line, and its file if another's */

static void
ngx_http_dynroute_table_written(ngx_conf_t *cf,
    ngx_http_dynroute_table_parse_t *p, dynroute::RuleId id)
{
    ngx_str_t                  *name;
    ngx_http_dynroute_table_t  *table = p->table;

    name = &cf->conf_file->file.name;

    if (name->data != p->file) {
        if (table->files.empty()
            || ngx_strlen(table->files.back().second) != name->len
            || ngx_strncmp(table->files.back().second, name->data, name->len)
               != 0)
        {
            table->files.emplace_back(id, table->arena.copy(*name).data);
        }

        p->file = name->data;
    }

    table->lines.push_back(static_cast<uint32_t>(cf->conf_file->line));
}


void
ngx_http_dynroute_table_where(ngx_http_dynroute_table_t *table, ngx_uint_t id,
    u_char **file, ngx_uint_t *line) noexcept
{
    auto f = std::upper_bound(table->files.begin(), table->files.end(), id,
                 [](ngx_uint_t i, const std::pair<uint32_t, u_char *> &e) {
                     return i < e.first;
                 });

    /* every rule is written somewhere until the checks forget it */

    *file = (f == table->files.begin())
                ? reinterpret_cast<u_char *>(const_cast<char *>(""))
                : std::prev(f)->second;
    *line = (id < table->lines.size()) ? table->lines[id] : 0;
}


void
ngx_http_dynroute_table_forget_where(ngx_http_dynroute_table_t *table)
    noexcept
{
    std::deque<uint32_t>().swap(table->lines);
    std::vector<std::pair<uint32_t, u_char *>>().swap(table->files);
}


/*
 * The named captures of a regex become variables, as with map and
 * server_name; they share the variables of those regexes of the same name.
 */

static ngx_int_t
ngx_http_dynroute_add_captures(ngx_conf_t *cf,
    ngx_http_dynroute_table_parse_t *p)
{
    void                                      *ctx;
    ngx_int_t                                  rc;
    ngx_pool_t                                *pool;
    std::vector<ngx_http_dynroute_capture_t>   captures;

    const dynroute::Regex &re =
        p->builder.regex(p->builder.regex_count() - 1);

    /* the variables API needs the http{} context that the block replaced,
     * and they live as long as the cycle */

    ctx = cf->ctx;
    pool = cf->pool;
    cf->ctx = p->http_ctx;
    cf->pool = p->pool;

    rc = NGX_OK;

    for (const auto &g : re.named_groups()) {
        rc = ngx_http_dynroute_add_capture(cf, g, captures);
        if (rc != NGX_OK) {
            break;
        }
    }

    cf->ctx = ctx;
    cf->pool = pool;

    if (rc != NGX_OK) {
        return rc;
    }

    p->table->captures.push_back(std::move(captures));

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynroute_add_capture(ngx_conf_t *cf, const dynroute::NamedGroup &g,
    std::vector<ngx_http_dynroute_capture_t> &captures)
{
    ngx_int_t             index;
    ngx_str_t             name;
    ngx_http_variable_t  *var;

    name.len = g.name.size();
    name.data = static_cast<u_char *>(ngx_pnalloc(cf->pool, name.len));
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(name.data, g.name.data(), name.len);

    var = ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_CHANGEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    if (var->get_handler == NULL) {
        var->get_handler = ngx_http_dynroute_capture_not_found;
    }

    index = ngx_http_get_variable_index(cf, &name);
    if (index == NGX_ERROR) {
        return NGX_ERROR;
    }

    captures.push_back({g.number, index});

    return NGX_OK;
}


/*
 * "dynroute NAME | off" in a server or a location.  Taken in http{} only to
 * refuse it there with where it belongs: nginx's "is not allowed here"
 * does not say.
 */

char *
ngx_http_dynroute(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    ngx_http_dynroute_loc_conf_t *dlcf =
        static_cast<ngx_http_dynroute_loc_conf_t *>(conf);

    ngx_str_t                      *value;
    ngx_http_dynroute_use_t        *use, **up;
    ngx_http_dynroute_main_conf_t  *dmcf;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    if (cf->cmd_type == NGX_HTTP_MAIN_CONF
        && ngx_http_dynroute_is(value[1], "off"))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dynroute\" is allowed in server and location "
                           "only, not in http: \"dynroute off;\" is the "
                           "default there");
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (cf->cmd_type == NGX_HTTP_MAIN_CONF) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dynroute\" is allowed in server and location "
                           "only, not in http: put \"dynroute %V;\" in the "
                           "server{} or location{} blocks it is for",
                           &value[1]);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (dlcf->use != NGX_CONF_UNSET_PTR) {
        return const_cast<char *>("is duplicate");
    }

    if (ngx_http_dynroute_is(value[1], "off")) {
        dlcf->use = NULL;
        return NGX_CONF_OK;
    }

    use = static_cast<ngx_http_dynroute_use_t *>(
              ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_use_t)));
    if (use == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    use->name = value[1];
    use->cscf = static_cast<ngx_http_core_srv_conf_t *>(
                    ngx_http_conf_get_module_srv_conf(cf,
                                                      ngx_http_core_module));
    use->file = cf->conf_file->file.name.data;
    use->line = cf->conf_file->line;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_dynroute_module));

    up = static_cast<ngx_http_dynroute_use_t **>(
             ngx_array_push(&dmcf->uses));
    if (up == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    *up = use;
    dlcf->use = use;

    return NGX_CONF_OK;
}


void
ngx_http_dynroute_table_info(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::Schema &schema)
{
    ngx_uint_t                   i;
    ngx_http_dynroute_table_t  **tp;

    tp = static_cast<ngx_http_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        schema.tables.emplace_back(ngx_http_dynroute_view(tp[i]->name));
        schema.table_rules.push_back(tp[i]->rules.size());
        schema.table_keys.emplace_back(ngx_http_dynroute_view(tp[i]->key));
    }
}
