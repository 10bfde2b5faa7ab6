/*
 * The stream module's metrics: sessions counted by table, rule (with the
 * zone's metrics=rules) and rollout variant, in the series of the http
 * dynroute_zone, as the http tables' are (ngx_http_dynroute_metrics.cpp).
 * The stream module has no zone of its own: without an http dynroute_zone,
 * or with its metrics=off, nothing is counted.
 *
 * The http zone's initialisation calls ngx_stream_dynroute_metrics_init()
 * for the cycle being started: each stream table, rule and variant gets its
 * series there (kinds 'T', 'R', 'V': the same name in http{} and stream{}
 * never shares one), and the configuration keeps the pointers.  A session
 * adds to them with one atomic instruction per word: the decision counts
 * what it saw (no name, no rule, a regex error), the log phase the
 * session's end (status, bytes, time, and a ClientHello cut short by
 * preread_timeout, which nginx closes before any decision).
 */

#include "ngx_stream_dynroute.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "ngx_http_dynroute_metrics.hpp"
#include "metrics.hpp"


namespace m = dynroute::metrics;


ngx_int_t
ngx_stream_dynroute_metrics_init(ngx_cycle_t *cycle,
    ngx_http_dynroute_main_conf_t *hmcf, ngx_slab_pool_t *shpool,
    ngx_rbtree_t *series, ngx_log_t *log) noexcept
{
    bool                              per_rule;
    size_t                            missing, n, k;
    uint64_t                         *c;
    ngx_uint_t                        i;
    ngx_stream_dynroute_table_t     **tp;
    ngx_stream_dynroute_rollout_t   **rp;
    ngx_stream_dynroute_main_conf_t  *dmcf;

    dmcf = ngx_stream_dynroute_cycle_conf(cycle);

    if (dmcf == NULL || hmcf->metrics == NGX_HTTP_DYNROUTE_METRICS_OFF) {
        return NGX_OK;
    }

    per_rule = (hmcf->metrics == NGX_HTTP_DYNROUTE_METRICS_RULES);
    missing = 0;
    n = 0;

    /* the variants first: the rules' copies point to them */

    rp = static_cast<ngx_stream_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        for (auto &v : rp[i]->variants) {
            v.counters = ngx_http_dynroute_metrics_series(shpool, series, 'V',
                             m::session_width, &rp[i]->name, &v.name,
                             &missing);
            n++;
        }
    }

    tp = static_cast<ngx_stream_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        tp[i]->counters = ngx_http_dynroute_metrics_series(shpool, series,
                              'T', m::stream_table_width, &tp[i]->name, NULL,
                              &missing);

        for (auto &rule : tp[i]->rules) {
            c = NULL;

            if (per_rule) {
                c = ngx_http_dynroute_metrics_series(shpool, series, 'R',
                        m::session_width, &tp[i]->name, &rule.text,
                        &missing);
                n++;
            }

            rule.counters = c;

            if (rule.variants == NULL) {
                continue;
            }

            for (k = 0; k < rule.dest->rollout->variants.size(); k++) {
                rule.variants[k].counters = c;
                rule.variants[k].variant_counters =
                    rule.dest->rollout->variants[k].counters;
            }
        }
    }

    if (missing) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "dynroute_zone in %s:%ui is too small for the metrics "
                      "of stream{} (%uz tables, %uz rules and variants, %uzk "
                      "more of counters): make it larger, or set "
                      "metrics=tables or metrics=off",
                      hmcf->zone_file, hmcf->zone_line, dmcf->tables.nelts, n,
                      (missing + 1023) / 1024);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_stream_dynroute_metrics_copy(const uint64_t *c, uint64_t *to, size_t n)
    noexcept
{
    size_t  i;

    for (i = 0; c && i < n; i++) {
        to[i] = ngx_http_dynroute_counted(&c[i]);
    }
}


void
ngx_stream_dynroute_metrics_read(ngx_cycle_t *cycle, m::Snapshot &s)
{
    size_t                             k;
    ngx_uint_t                         i;
    ngx_stream_dynroute_table_t      **tp;
    ngx_stream_dynroute_rollout_t    **rp;
    ngx_stream_dynroute_main_conf_t   *dmcf;

    dmcf = ngx_stream_dynroute_cycle_conf(cycle);

    if (dmcf == NULL) {
        return;
    }

    tp = static_cast<ngx_stream_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        if (tp[i]->counters == NULL) {
            continue;    /* metrics=off, or no zone */
        }

        m::StreamTableStats &t = s.stream_tables.emplace_back();

        t.name = std::string(ngx_http_dynroute_view(tp[i]->name));
        t.rules = tp[i]->rules.size();
        ngx_stream_dynroute_metrics_copy(tp[i]->counters, t.values.data(),
                                         m::stream_table_width);

        for (const auto &rule : tp[i]->rules) {
            if (rule.counters == NULL) {
                continue;
            }

            m::StreamRuleStats &r = t.per_rule.emplace_back();

            r.rule = std::string(ngx_http_dynroute_view(rule.text));
            ngx_stream_dynroute_metrics_copy(rule.counters, r.values.data(),
                                             m::session_width);
        }
    }

    rp = static_cast<ngx_stream_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        if (rp[i]->variants.empty() || rp[i]->variants[0].counters == NULL) {
            continue;
        }

        m::StreamRolloutStats &ro = s.stream_rollouts.emplace_back();

        ro.name = std::string(ngx_http_dynroute_view(rp[i]->name));

        /* the live weights: the runtime's, or the configured ones */
        dynroute::Split split = ngx_stream_dynroute_runtime_split(
                                    dmcf->runtime, rp[i]);

        for (k = 0; k < rp[i]->variants.size(); k++) {
            const auto           &var = rp[i]->variants[k];
            m::StreamVariantStats &v = ro.variants.emplace_back();

            v.name = std::string(ngx_http_dynroute_view(var.name));
            v.upstream = std::string(ngx_http_dynroute_view(var.upstream));
            v.weight = split.weights[k];
            ngx_stream_dynroute_metrics_copy(var.counters, v.values.data(),
                                             m::session_width);
        }
    }
}


/* a session's end, in one series */

static void
ngx_stream_dynroute_metrics_session(uint64_t *c, ngx_uint_t status,
    off_t received, off_t sent, uint64_t ms) noexcept
{
    int  i;

    i = m::stream_status_index(status);

    if (i >= 0) {
        ngx_http_dynroute_count(&c[m::x_status + i]);
    }

    if (received > 0) {
        ngx_http_dynroute_count(&c[m::x_received],
                                static_cast<uint64_t>(received));
    }

    if (sent > 0) {
        ngx_http_dynroute_count(&c[m::x_sent], static_cast<uint64_t>(sent));
    }

    ngx_http_dynroute_count(&c[m::x_buckets + m::session_bucket(ms)]);
    ngx_http_dynroute_count(&c[m::x_sum_ms], ms);
}


/*
 * The log phase: a session of a server with "dynroute TABLE;", by its
 * table, and by the rule and variant it was routed by.  A session closed
 * before the decision (the client gone during preread) counts for the
 * table alone.
 */

static ngx_int_t
ngx_stream_dynroute_log_handler(ngx_stream_session_t *s) noexcept
{
    uint64_t                          ms;
    ngx_time_t                       *tp;
    ngx_msec_int_t                    d;
    ngx_stream_dynroute_rule_t       *rule;
    ngx_stream_dynroute_srv_conf_t   *dscf;

    dscf = static_cast<ngx_stream_dynroute_srv_conf_t *>(
               ngx_stream_get_module_srv_conf(s, ngx_stream_dynroute_module));

    if (dscf->table == NULL || dscf->table->counters == NULL) {
        return NGX_OK;
    }

    tp = ngx_timeofday();
    d = static_cast<ngx_msec_int_t>((tp->sec - s->start_sec) * 1000
                                    + (tp->msec - s->start_msec));
    ms = (d > 0) ? static_cast<uint64_t>(d) : 0;

    ngx_stream_dynroute_metrics_session(dscf->table->counters, s->status,
                                        s->received, s->connection->sent, ms);

    rule = static_cast<ngx_stream_dynroute_rule_t *>(
               ngx_stream_get_module_ctx(s, ngx_stream_dynroute_module));

    if (rule == NULL) {
        /*
         * No decision.  At preread_timeout nginx finalizes the session in
         * the preread phase (with 200), and the read event keeps its
         * timedout flag: a ClientHello that never completed.
         */

        if (s->connection->read->timedout) {
            ngx_http_dynroute_count(&dscf->table->counters[
                                        m::x_preread_timeouts]);
        }

        return NGX_OK;
    }

    if (rule->counters) {
        ngx_stream_dynroute_metrics_session(rule->counters, s->status,
                                            s->received, s->connection->sent,
                                            ms);
    }

    if (rule->variant_counters) {
        ngx_stream_dynroute_metrics_session(rule->variant_counters, s->status,
                                            s->received, s->connection->sent,
                                            ms);
    }

    return NGX_OK;
}


ngx_int_t
ngx_stream_dynroute_metrics_log_init(ngx_conf_t *cf,
    ngx_stream_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_stream_handler_pt        *h;
    ngx_stream_core_main_conf_t  *cmcf;

    if (dmcf->uses.nelts == 0) {
        return NGX_OK;
    }

    cmcf = static_cast<ngx_stream_core_main_conf_t *>(
               ngx_stream_conf_get_module_main_conf(cf,
                                                    ngx_stream_core_module));

    h = static_cast<ngx_stream_handler_pt *>(
            ngx_array_push(&cmcf->phases[NGX_STREAM_LOG_PHASE].handlers));
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_stream_dynroute_log_handler;

    return NGX_OK;
}
