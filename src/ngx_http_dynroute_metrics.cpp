/*
 * The metrics of a dynroute_zone: counters in shared memory, found by name.
 *
 * Every table, rule (with metrics=rules) and rollout variant of the
 * configuration has a series in the zone: a node of a red-black tree keyed
 * by what it counts ("v" rollout variant, "t" table, "r" table rule), with
 * an array of 64-bit counters (dynroute::metrics' layouts).  The master
 * finds or makes them when it initialises the zone, before the workers
 * start, and the configuration keeps pointers to the counters; the request
 * path adds to them with one atomic instruction each, as nginx's own
 * stub_status counters are, and never locks.
 *
 * A reload that reuses the zone finds the same series again, so a counter
 * never goes backwards; workers of the old configuration, still finishing
 * their requests, count into the same words.  A series the configuration
 * no longer names stays in the zone, unlisted, until the zone goes (a
 * restart, or a new zone size): old workers may still write to it.
 */

#include <string>

#include "ngx_http_dynroute_metrics.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "ngx_http_dynroute_decision.hpp"
#include "metrics.hpp"


namespace m = dynroute::metrics;


/* in shared memory: then `width` counters, then the key's bytes */

typedef struct {
    ngx_str_node_t  sn;
    uint64_t        width;
} ngx_http_dynroute_series_t;


static inline uint64_t *
ngx_http_dynroute_series_values(ngx_http_dynroute_series_t *s) noexcept
{
    return reinterpret_cast<uint64_t *>(s + 1);
}


static size_t
ngx_http_dynroute_series_size(const std::string &key, size_t width) noexcept
{
    return sizeof(ngx_http_dynroute_series_t) + width * sizeof(uint64_t)
           + key.size();
}


namespace {

/* a series the configuration needs: its key is made when needed */
struct Want {
    char              kind;
    size_t            width;
    const ngx_str_t  *a;
    const ngx_str_t  *b;     /* or NULL */
    uint64_t        **ptr;
};

}


/*
 * The key of a series, made in one buffer reused for every series: no
 * allocation per rule, which would leave the workers' heap in another
 * state (and every request's malloc a little slower).
 */

static void
ngx_http_dynroute_series_key(std::string &key, const Want &w)
{
    key.assign(1, w.kind);
    key += static_cast<char>('0' + w.width / 10);
    key += static_cast<char>('0' + w.width % 10);
    key += '\0';
    key.append(reinterpret_cast<const char *>(w.a->data), w.a->len);

    if (w.b) {
        key += '\0';
        key.append(reinterpret_cast<const char *>(w.b->data), w.b->len);
    }
}


/* every series the configuration needs, in its order: throws */

static void
ngx_http_dynroute_metrics_wanted(ngx_http_dynroute_main_conf_t *dmcf,
    std::vector<Want> &want, size_t *rules, size_t *variants)
{
    size_t                         n, j;
    ngx_uint_t                     i;
    ngx_http_dynroute_table_t    **tp;
    ngx_http_dynroute_rollout_t  **rp;

    tp = static_cast<ngx_http_dynroute_table_t **>(dmcf->tables.elts);
    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    n = dmcf->tables.nelts;

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        n += rp[i]->variants.size() * (rp[i]->guard ? 2 : 1);
    }

    for (i = 0; dmcf->metrics == NGX_HTTP_DYNROUTE_METRICS_RULES
                && i < dmcf->tables.nelts; i++)
    {
        n += tp[i]->rules.size();
    }

    want.reserve(n);
    *rules = 0;
    *variants = 0;

    for (i = 0; i < dmcf->tables.nelts; i++) {
        want.push_back({'t', m::table_width, &tp[i]->name, NULL,
                        &tp[i]->counters});

        if (dmcf->metrics != NGX_HTTP_DYNROUTE_METRICS_RULES) {
            continue;
        }

        tp[i]->rule_counters.assign(tp[i]->rules.size(), NULL);
        j = 0;

        for (auto &rule : tp[i]->rules) {
            want.push_back({'r', 1, &tp[i]->name, &rule.text,
                            &tp[i]->rule_counters[j++]});
            (*rules)++;
        }
    }

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        for (auto &v : rp[i]->variants) {
            want.push_back({'v', m::variant_width, &rp[i]->name, &v.name,
                            &v.counters});
            (*variants)++;

            /* a guarded rollout's variants: their guard series */

            if (rp[i]->guard) {
                want.push_back({'g', m::guard_width, &rp[i]->name, &v.name,
                                &v.guard});
            }
        }
    }
}


/*
 * The series a previous configuration made, found again (a reload keeps
 * the counts); the bytes of those still to make.  Throws.
 */

static size_t
ngx_http_dynroute_metrics_found(ngx_rbtree_t *series, std::vector<Want> &want,
    std::string &key)
{
    size_t           missing;
    uint32_t         hash;
    ngx_str_t        k;
    ngx_str_node_t  *sn;

    missing = 0;

    for (auto &w : want) {
        ngx_http_dynroute_series_key(key, w);

        k.data = reinterpret_cast<u_char *>(key.data());
        k.len = key.size();
        hash = ngx_crc32_long(k.data, k.len);

        sn = ngx_str_rbtree_lookup(series, &k, hash);

        if (sn) {
            *w.ptr = ngx_http_dynroute_series_values(
                         reinterpret_cast<ngx_http_dynroute_series_t *>(sn));
            continue;
        }

        *w.ptr = NULL;
        missing += ngx_http_dynroute_series_size(key, w.width);
    }

    return missing;
}


/* one series made in the zone, or NULL: it is full.  Throws. */

static ngx_http_dynroute_series_t *
ngx_http_dynroute_metrics_make(ngx_slab_pool_t *shpool, ngx_rbtree_t *series,
    const Want &w, std::string &key)
{
    size_t                       size;
    ngx_http_dynroute_series_t  *s;

    ngx_http_dynroute_series_key(key, w);
    size = ngx_http_dynroute_series_size(key, w.width);

    s = static_cast<ngx_http_dynroute_series_t *>(
            ngx_slab_calloc_locked(shpool, size));
    if (s == NULL) {
        return NULL;
    }

    s->width = w.width;
    s->sn.str.len = key.size();
    s->sn.str.data = reinterpret_cast<u_char *>(
                         ngx_http_dynroute_series_values(s) + w.width);
    ngx_memcpy(s->sn.str.data, key.data(), key.size());
    s->sn.node.key = ngx_crc32_long(s->sn.str.data, s->sn.str.len);

    ngx_rbtree_insert(series, &s->sn.node);

    *w.ptr = ngx_http_dynroute_series_values(s);

    return s;
}


ngx_int_t
ngx_http_dynroute_metrics_init(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_slab_pool_t *shpool, ngx_rbtree_t *series, ngx_log_t *log) noexcept
{
    size_t                         size, missing, rules, variants, zone;
    ngx_http_dynroute_series_t    *s;

    if (dmcf->metrics == NGX_HTTP_DYNROUTE_METRICS_OFF) {
        return NGX_OK;
    }

    try {
        std::vector<Want> want;
        std::string key;

        key.reserve(1024);

        ngx_http_dynroute_metrics_wanted(dmcf, want, &rules, &variants);

        missing = ngx_http_dynroute_metrics_found(series, want, key);

        for (auto &w : want) {
            if (*w.ptr) {
                continue;
            }

            s = ngx_http_dynroute_metrics_make(shpool, series, w, key);

            if (s == NULL) {
                /* what the counters take, twice over: the slab
                 * allocator rounds each allocation up, at most to twice
                 * its size */

                zone = shpool->end - reinterpret_cast<u_char *>(shpool);
                size = zone + 2 * missing + 64 * 1024;
                size = (size + 65535) / 65536 * 64;

                ngx_log_error(NGX_LOG_EMERG, log, 0,
                              "dynroute_zone in %s:%ui is too small for the "
                              "metrics of %uz rules and %uz variants (%uzk "
                              "more of counters): make it %uzk at least, or "
                              "set metrics=tables or metrics=off",
                              dmcf->zone_file, dmcf->zone_line, rules,
                              variants, (missing + 1023) / 1024, size);
                return NGX_ERROR;
            }

            missing -= ngx_http_dynroute_series_size(key, w.width);
        }

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "dynroute metrics: %s",
                      e.what());
        return NGX_ERROR;
    }

    return NGX_OK;
}


uint64_t *
ngx_http_dynroute_metrics_series(ngx_slab_pool_t *shpool,
    ngx_rbtree_t *series, char kind, size_t width, const ngx_str_t *a,
    const ngx_str_t *b, size_t *missing) noexcept
{
    size_t     more;
    uint64_t  *values;

    values = NULL;

    try {
        std::vector<Want> want{{kind, width, a, b, &values}};
        std::string key;

        more = ngx_http_dynroute_metrics_found(series, want, key);

        if (more != 0
            && ngx_http_dynroute_metrics_make(shpool, series, want[0], key)
               == NULL)
        {
            if (missing) {
                *missing += more;
            }

            return NULL;
        }

    } catch (const std::exception &) {
        return NULL;
    }

    return values;
}


uint64_t *
ngx_http_dynroute_metrics_cell(ngx_slab_pool_t *shpool, ngx_rbtree_t *series,
    ngx_str_t *upstream, ngx_str_t *server) noexcept
{
    return ngx_http_dynroute_metrics_series(shpool, series, 'c',
                                            m::cell_bytes / sizeof(uint64_t),
                                            upstream, server, NULL);
}


/*
 * The log phase, for a rollout whose variant was picked: by the variant
 * chosen, the one that served (the primary, if the chosen one failed) and
 * why.  Never inlined: the log handler of a rule without a rollout does not
 * pay for its frame.
 */

static __attribute__((noinline)) void
ngx_http_dynroute_metrics_variant(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx) noexcept
{
    int                           cls;
    uint64_t                     *c, ms;
    ngx_uint_t                    i, status, timed, served, reason;
    ngx_http_upstream_state_t    *st;
    ngx_http_dynroute_rollout_t  *ro;

    ro = ctx->rule->dest->rollout;

    if (ctx->fallback) {
        served = ctx->primary_variant;
        reason = static_cast<ngx_uint_t>(dynroute::Rollout::Reason::fallback);

    } else {
        served = ctx->variant;
        reason = ctx->reason;
    }

    if (ro->variants[served].counters == NULL) {
        return;
    }

    c = ro->variants[served].counters;

    ngx_http_dynroute_count(&c[m::v_requests + reason]);

    /* the status as $status has it */

    if (r->err_status) {
        status = r->err_status;

    } else {
        status = r->headers_out.status;
    }

    cls = m::status_class(status);

    if (cls >= 0) {
        ngx_http_dynroute_count(&c[m::v_responses + cls]);
    }

    /* the upstream response time: $upstream_response_time, summed */

    if (r->upstream_states && r->upstream_states->nelts) {
        st = static_cast<ngx_http_upstream_state_t *>(
                 r->upstream_states->elts);
        ms = 0;
        timed = 0;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (st[i].status && st[i].response_time != (ngx_msec_t) -1) {
                ms += st[i].response_time;
                timed = 1;
            }
        }

        if (timed) {
            ngx_http_dynroute_count(&c[m::v_buckets + m::latency_bucket(ms)]);
            ngx_http_dynroute_count(&c[m::v_sum_ms], ms);
        }
    }

    if (served != ctx->variant && ro->variants[ctx->variant].counters) {
        ngx_http_dynroute_count(
            &ro->variants[ctx->variant].counters[m::v_fallbacks]);
    }
}


/* for {prefix}metrics and {prefix}stats: throws */

/*
 * For {prefix}metrics and {prefix}stats: every counter, by table, rule,
 * rollout and variant, in the configuration's order; the live values (a
 * variant's weight and upstream, the zone's generation) are the API's to
 * add.  Throws.
 */

void
ngx_http_dynroute_metrics_read(ngx_http_dynroute_main_conf_t *dmcf,
    m::Snapshot &s)
{
    size_t                         j;
    uint64_t                      *c;
    ngx_uint_t                     i;
    ngx_http_dynroute_table_t    **tables;
    ngx_http_dynroute_rollout_t  **rollouts;

    s.per_rule = (dmcf->metrics == NGX_HTTP_DYNROUTE_METRICS_RULES);

    tables = static_cast<ngx_http_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        m::TableStats &t = s.tables.emplace_back();

        t.name = std::string(ngx_http_dynroute_view(tables[i]->name));
        t.rules = tables[i]->rules.size();

        if (tables[i]->counters) {
            for (j = 0; j < m::table_width; j++) {
                t.values[j] = ngx_http_dynroute_counted(
                                  &tables[i]->counters[j]);
            }
        }

        if (!s.per_rule) {
            continue;
        }

        j = 0;

        for (const auto &rule : tables[i]->rules) {
            c = (j < tables[i]->rule_counters.size())
                    ? tables[i]->rule_counters[j] : NULL;
            j++;

            t.per_rule.push_back({std::string(
                                      ngx_http_dynroute_view(rule.text)),
                                  c ? ngx_http_dynroute_counted(c) : 0});
        }
    }

    rollouts = static_cast<ngx_http_dynroute_rollout_t **>(
                   dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        m::RolloutStats &ro = s.rollouts.emplace_back();

        ro.name = std::string(ngx_http_dynroute_view(rollouts[i]->name));

        for (const auto &var : rollouts[i]->variants) {
            m::VariantStats &v = ro.variants.emplace_back();

            v.name = std::string(ngx_http_dynroute_view(var.name));

            if (var.counters) {
                for (j = 0; j < m::variant_width; j++) {
                    v.values[j] = ngx_http_dynroute_counted(&var.counters[j]);
                }
            }

            if (var.guard) {
                v.guarded = true;

                for (j = 0; j < m::guard_width; j++) {
                    v.guard[j] = ngx_http_dynroute_counted(&var.guard[j]);
                }
            }
        }
    }
}


/*
 * The log phase, with a dynroute_zone and its metrics: count the main
 * request once, by the table and rule of its last decision and, for a
 * rollout whose variant was picked, by the variant that served it.
 */

static ngx_int_t
ngx_http_dynroute_log_handler(ngx_http_request_t *r) noexcept
{
    uint64_t                  *t;
    ngx_http_dynroute_ctx_t   *ctx;
    ngx_http_dynroute_rule_t  *rule;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_dynroute_get_ctx(r);

    if (ctx == NULL || ctx->table == NULL || ctx->table->counters == NULL) {
        return NGX_OK;
    }

    t = ctx->table->counters;
    rule = ctx->rule;

    ngx_http_dynroute_count(&t[m::t_requests]);

    if (rule == NULL) {
        ngx_http_dynroute_count(&t[m::t_misdirected]);
        return NGX_OK;
    }

    if (ctx->runtime) {
        ngx_http_dynroute_count(&t[m::t_runtime]);

    } else if (ctx->rule_index < ctx->table->rule_counters.size()
               && ctx->table->rule_counters[ctx->rule_index])
    {
        ngx_http_dynroute_count(ctx->table->rule_counters[ctx->rule_index]);
    }

    if (rule->dest->rollout && ctx->picked) {
        ngx_http_dynroute_metrics_variant(r, ctx);
    }

    return NGX_OK;
}


/* with a dynroute_zone that counts, and something to count */

ngx_int_t
ngx_http_dynroute_metrics_log_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    if (dmcf->zone == NULL || dmcf->metrics == NGX_HTTP_DYNROUTE_METRICS_OFF
        || (dmcf->tables.nelts == 0 && dmcf->rollouts.nelts == 0))
    {
        return NGX_OK;
    }

    cmcf = static_cast<ngx_http_core_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));

    h = static_cast<ngx_http_handler_pt *>(
            ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers));
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_dynroute_log_handler;

    return NGX_OK;
}
