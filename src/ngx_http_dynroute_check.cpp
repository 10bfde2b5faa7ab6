/*
 * Postconfiguration checks of the tables and of their uses.  Fail closed:
 * an unknown upstream would otherwise be resolved through DNS at request
 * time, and a missing named location answered 500.
 */

#include <string>
#include <string_view>

#include "ngx_http_dynroute_check.hpp"
#include "ngx_http_dynroute_table.hpp"
#include "ngx_http_dynroute_targets.hpp"
#include "suggest.hpp"


/*
 * Everything is parsed: check that each table's targets exist, that each
 * "dynroute NAME" names a table, and that the named locations a table jumps
 * to exist in every server that uses it.  Fail closed: an unknown upstream
 * would otherwise be resolved through DNS at request time.
 */

static ngx_int_t
ngx_http_dynroute_check_upstreams(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, ngx_http_dynroute_table_t *table)
    noexcept
{
    u_char                      *file;
    ngx_str_t                    hint;
    ngx_uint_t                   line;
    const char                  *why;
    std::string_view             closest;
    ngx_http_dynroute_target_t  *t;

    /* each target once, in the order of the rules first naming them */

    for (auto &dest : table->dests) {
        if (dest.named) {
            continue;
        }

        try {
            t = ngx_http_dynroute_target_resolve(dmcf,
                    ngx_http_dynroute_view(dest.target), &why);

            if (t == NULL && why == NULL) {
                closest = ngx_http_dynroute_target_closest(dmcf,
                              ngx_http_dynroute_view(dest.target), false);
            }

        } catch (...) {
            (void) ngx_http_dynroute_conf_caught(cf, "dynroute");
            return NGX_ERROR;
        }

        if (t == NULL) {
            ngx_http_dynroute_table_where(table, dest.first, &file, &line);
        }

        if (t == NULL && why) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "upstream \"%V\" in dynroute table \"%V\" %s, "
                          "in %s:%ui", &dest.target, &table->name, why,
                          file, line);
            return NGX_ERROR;
        }

        if (t == NULL) {
            hint = ngx_http_dynroute_did_you_mean(cf, closest);
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown upstream \"%V\"%V in dynroute table "
                          "\"%V\": a target must be an upstream{} block, a "
                          "dynroute_rollout or a named location in %s:%ui",
                          &dest.target, &hint, &table->name, file, line);
            return NGX_ERROR;
        }

        dest.rollout = t->rollout;
        dest.uscf = t->uscf;
    }

    return NGX_OK;
}


static ngx_http_core_loc_conf_t *
ngx_http_dynroute_named_location(ngx_http_core_srv_conf_t *cscf,
    const ngx_str_t &name) noexcept
{
    ngx_http_core_loc_conf_t  **clcfp;

    for (clcfp = cscf->named_locations; clcfp && *clcfp; clcfp++) {
        if (ngx_http_dynroute_eq((*clcfp)->name, name)) {
            return *clcfp;
        }
    }

    return NULL;
}


/*
 * " (did you mean ...?)" for name, an unknown table (cscf NULL) or an
 * unknown named location of the server cscf, or "".
 */

static ngx_str_t
ngx_http_dynroute_check_hint(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, ngx_http_core_srv_conf_t *cscf,
    const ngx_str_t &name) noexcept
{
    ngx_uint_t                   i;
    ngx_http_core_loc_conf_t   **clcfp;
    ngx_http_dynroute_table_t  **tp;

    try {
        dynroute::ClosestName  closest(ngx_http_dynroute_view(name));

        if (cscf == NULL) {
            tp = static_cast<ngx_http_dynroute_table_t **>(dmcf->tables.elts);

            for (i = 0; i < dmcf->tables.nelts; i++) {
                closest.consider(ngx_http_dynroute_view(tp[i]->name));
            }

        } else {
            for (clcfp = cscf->named_locations; clcfp && *clcfp; clcfp++) {
                closest.consider(ngx_http_dynroute_view((*clcfp)->name));
            }
        }

        return ngx_http_dynroute_did_you_mean(cf, closest.best());

    } catch (...) {
        return ngx_http_dynroute_did_you_mean(cf, std::string_view());
    }
}


static ngx_int_t
ngx_http_dynroute_check_use(ngx_conf_t *cf, ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_dynroute_use_t *use) noexcept
{
    u_char      *file;
    ngx_str_t    hint;
    ngx_uint_t   line;

    use->table = ngx_http_dynroute_find_named<ngx_http_dynroute_table_t>(
                     dmcf->tables, use->name);

    if (use->table == NULL) {
        hint = ngx_http_dynroute_check_hint(cf, dmcf, NULL, use->name);
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "unknown dynroute table \"%V\"%V in %s:%ui",
                      &use->name, &hint, use->file, use->line);
        return NGX_ERROR;
    }

    for (const auto &dest : use->table->dests) {
        if (!dest.named) {
            continue;
        }

        if (ngx_http_dynroute_named_location(use->cscf, dest.target) == NULL) {
            ngx_http_dynroute_table_where(use->table, dest.first, &file,
                                          &line);
            hint = ngx_http_dynroute_check_hint(cf, dmcf, use->cscf,
                                                dest.target);
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown named location \"%V\"%V in dynroute "
                          "table \"%V\" (%s:%ui): the server using the table "
                          "in %s:%ui has no such location",
                          &dest.target, &hint, &use->table->name, file, line,
                          use->file, use->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A request jumps to a named location once.  Where the configuration
 * proves that a second jump would be needed, refuse it: the table's "ip"
 * rule sends IP hosts to a named location that routes with another table
 * whose "ip" rule sends them to yet another named location (two tables
 * jumping to each other's locations are the simplest case).  Other rules
 * cannot be proven to meet the same hosts; at run time such a request is
 * served by the first named location (see ngx_http_dynroute_no_upstream).
 */

static ngx_int_t
ngx_http_dynroute_check_jumps(ngx_conf_t *cf, ngx_http_dynroute_use_t *use)
    noexcept
{
    u_char                        *file;
    ngx_uint_t                     line;
    dynroute::RuleId               id, rule_id;
    ngx_http_dynroute_dest_t      *rule, *next_rule;
    ngx_http_dynroute_table_t     *table, *next;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_dynroute_loc_conf_t  *dlcf;

    table = use->table;
    id = table->core.ip_rule();

    if (id == dynroute::no_rule || !table->rules[id].dest->named) {
        return NGX_OK;
    }

    rule_id = id;
    rule = table->rules[id].dest;
    clcf = ngx_http_dynroute_named_location(use->cscf, rule->target);

    dlcf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               clcf->loc_conf[ngx_http_dynroute_module.ctx_index]);

    if (dlcf->use == NULL || dlcf->health || dlcf->use->table == table) {
        return NGX_OK;
    }

    next = dlcf->use->table;
    id = next->core.ip_rule();

    if (id == dynroute::no_rule || !next->rules[id].dest->named) {
        return NGX_OK;
    }

    next_rule = next->rules[id].dest;

    if (ngx_http_dynroute_eq(next_rule->target, rule->target)) {
        return NGX_OK;
    }

    ngx_http_dynroute_table_where(table, rule_id, &file, &line);

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "dynroute table \"%V\" (used in %s:%ui) sends IP hosts to "
                  "the named location \"%V\", but it runs in \"%V\", where "
                  "table \"%V\" (%s:%ui) sends them: a request jumps to a "
                  "named location only once",
                  &next->name, dlcf->use->file, dlcf->use->line,
                  &next_rule->target, &rule->target, &table->name,
                  file, line);

    return NGX_ERROR;
}


/*
 * A table's key=$name: a variable that nginx knows, as it checks every
 * variable that was indexed once everything is read (ngx_http_variables_
 * init_vars()), whose message names neither the file nor the line.  The
 * variables of other directives (map, set, a regex's named groups) are
 * known by now.
 */

static ngx_int_t
ngx_http_dynroute_check_key(ngx_conf_t *cf, ngx_http_dynroute_table_t *table)
    noexcept
{
    ngx_str_t                   name, hint;
    ngx_uint_t                  i;
    ngx_hash_key_t             *key;
    std::string                 closest;
    ngx_http_variable_t        *pv;
    ngx_http_core_main_conf_t  *cmcf;

    if (table->key.len == 0) {
        return NGX_OK;
    }

    cmcf = static_cast<ngx_http_core_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));

    if (cmcf->variables_keys == NULL) {
        return NGX_OK;      /* nginx checks it itself */
    }

    name.data = table->key.data + 1;
    name.len = table->key.len - 1;

    key = static_cast<ngx_hash_key_t *>(cmcf->variables_keys->keys.elts);

    for (i = 0; i < cmcf->variables_keys->keys.nelts; i++) {
        if (key[i].key.len == name.len
            && ngx_strncasecmp(key[i].key.data, name.data, name.len) == 0)
        {
            return NGX_OK;
        }
    }

    pv = static_cast<ngx_http_variable_t *>(cmcf->prefix_variables.elts);

    for (i = 0; i < cmcf->prefix_variables.nelts; i++) {
        if (name.len >= pv[i].name.len
            && ngx_strncasecmp(name.data, pv[i].name.data, pv[i].name.len)
               == 0)
        {
            return NGX_OK;
        }
    }

    try {
        dynroute::ClosestName  c(ngx_http_dynroute_view(name));

        for (i = 0; i < cmcf->variables_keys->keys.nelts; i++) {
            c.consider(ngx_http_dynroute_view(key[i].key));
        }

        if (!c.best().empty()) {
            closest = "$";
            closest += c.best();
        }

    } catch (...) {
        closest.clear();
    }

    hint = ngx_http_dynroute_did_you_mean(cf, closest);

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "unknown variable \"%V\"%V in the key of dynroute table "
                  "\"%V\": write a variable that nginx knows, such as "
                  "$http_x_tenant, $arg_tenant, $cookie_tenant or a map's "
                  "result in %s:%ui",
                  &table->key, &hint, &table->name,
                  table->file, table->line);

    return NGX_ERROR;
}


ngx_int_t
ngx_http_dynroute_check_tables(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                   i;
    ngx_http_dynroute_use_t    **up;
    ngx_http_dynroute_table_t  **tp;

    tp = static_cast<ngx_http_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        if (ngx_http_dynroute_check_key(cf, tp[i]) != NGX_OK
            || ngx_http_dynroute_check_upstreams(cf, dmcf, tp[i]) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    up = static_cast<ngx_http_dynroute_use_t **>(dmcf->uses.elts);

    for (i = 0; i < dmcf->uses.nelts; i++) {
        if (ngx_http_dynroute_check_use(cf, dmcf, up[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < dmcf->uses.nelts; i++) {
        if (ngx_http_dynroute_check_jumps(cf, up[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /* nothing says where a rule was written any more */

    for (i = 0; i < dmcf->tables.nelts; i++) {
        ngx_http_dynroute_table_forget_where(tp[i]);
    }

    return NGX_OK;
}
