/*
 * dynroute_zone: the runtime state in shared memory, and the live values
 * each worker routes by.
 *
 * The zone holds one published version of the state: the rollouts' runtime
 * values and the draining flag as JSON text (small), and the runtime hosts
 * as a hash block that workers search in place (dynroute::HostsView).  A
 * writer (the API, serialised by the zone's mutex) builds a complete new
 * version, stores the pointer to it, then bumps the generation, and only
 * then frees the old one.  A reader never locks: it reads the generation,
 * then what it needs, then the generation again; if that changed, what it
 * read may have been freed under it and it reads again.  So a worker sees a
 * change with one atomic read per request, and a request sees one version
 * or the next, never a mix.
 *
 * Each worker keeps what a version's JSON says as rollout objects of its
 * own (rebuilt when the generation changes, which costs a few microseconds
 * once per change), and its requests keep the upstream{} they were given,
 * so a change never alters a request already routed.
 */

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ngx_http_dynroute_module.hpp"
#include "hosts.hpp"
#include "state.hpp"


/* in shared memory */

typedef struct {
    uint64_t                       generation;
    uint64_t                       config;     /* of the writer */
    size_t                         small_len;
    u_char                        *small;      /* JSON, without the hosts */
    size_t                         hosts_len;
    u_char                        *hosts;      /* dynroute::HostsView block */
} ngx_http_dynroute_version_t;

typedef struct {
    uint64_t                       generation;  /* atomic */
    uint64_t                       draining;    /* atomic */
    ngx_http_dynroute_version_t   *version;     /* atomic */

    /*
     * Configurations, under the mutex: each cycle that uses the zone gets
     * the next number when the master initialises the zone; the newest
     * one whose workers run is current, from its first worker's start on
     * (a reload that fails never becomes current).  Only a worker of the
     * current configuration may publish.
     */
    uint64_t                       configs;
    uint64_t                       current;
    unsigned                       unsaved:1;   /* the state file lags */

    /* the metrics' counters by name (ngx_http_dynroute_metrics.cpp) */
    ngx_rbtree_t                   series;
    ngx_rbtree_node_t              sentinel;
} ngx_http_dynroute_shm_t;


struct ngx_http_dynroute_live_t {
    ngx_http_dynroute_main_conf_t                     *dmcf;
    ngx_slab_pool_t                                   *shpool = nullptr;
    ngx_http_dynroute_shm_t                           *sh = nullptr;
    ngx_str_t                                          zone_name{};
    uint64_t                                           config = 0;

    /* the registry's targets, as the runtime state checks names */
    dynroute::Schema                                   schema;

    /* what this worker routes by: per rollout, its own core or NULL (the
     * configured one), and the upstream{} of each variant */
    std::vector<std::vector<const ngx_http_upstream_srv_conf_t *>>
                                                       configured;
    std::vector<std::unique_ptr<dynroute::Rollout>>    cores;
    std::vector<std::vector<const ngx_http_upstream_srv_conf_t *>>
                                                       upstreams;
    uint64_t                                           generation = ~0ULL;
                                   /* ~0: never read; no generation gets
                                      there (dynroute::max_generation) */
    dynroute::HostsView                                hosts;
    bool                                               stale_logged = false;

    /* a writer's decoded copy of the published state */
    dynroute::State                                    cached;
    uint64_t                                           cached_generation
                                                           = ~0ULL;
};


static ngx_int_t ngx_http_dynroute_init_zone(ngx_shm_zone_t *shm_zone,
    void *data) noexcept;


static inline uint64_t
ngx_http_dynroute_load(const uint64_t *p) noexcept
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}


static inline ngx_http_dynroute_version_t *
ngx_http_dynroute_load_version(ngx_http_dynroute_shm_t *sh) noexcept
{
    return __atomic_load_n(&sh->version, __ATOMIC_ACQUIRE);
}


/* the bytes [p, p + n) are inside the zone */

static bool
ngx_http_dynroute_in_zone(ngx_http_dynroute_live_t *live, const void *p,
    size_t n) noexcept
{
    const u_char *b = static_cast<const u_char *>(p);
    const u_char *start = reinterpret_cast<const u_char *>(live->shpool);
    const u_char *end = live->shpool->end;

    return b >= start && b <= end && n <= static_cast<size_t>(end - b);
}


/* configuration */


char *
ngx_http_dynroute_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_dynroute_main_conf_t *dmcf =
        static_cast<ngx_http_dynroute_main_conf_t *>(conf);

    ssize_t      size;
    ngx_str_t   *value, name;
    ngx_uint_t   i;

    if (dmcf->zone) {
        return const_cast<char *>("is duplicate");
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);
    name = value[1];

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (size < static_cast<ssize_t>(64 * 1024)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_zone \"%V\" is too small: 64k at least",
                           &name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    for (i = 3; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "state=", 6) == 0
            && value[i].len > 6)
        {
            dmcf->state.data = value[i].data + 6;
            dmcf->state.len = value[i].len - 6;

            if (ngx_conf_full_name(cf->cycle, &dmcf->state, 0) != NGX_OK) {
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "metrics=rules") == 0) {
            dmcf->metrics = NGX_HTTP_DYNROUTE_METRICS_RULES;
            continue;
        }

        if (ngx_strcmp(value[i].data, "metrics=tables") == 0) {
            dmcf->metrics = NGX_HTTP_DYNROUTE_METRICS_TABLES;
            continue;
        }

        if (ngx_strcmp(value[i].data, "metrics=off") == 0) {
            dmcf->metrics = NGX_HTTP_DYNROUTE_METRICS_OFF;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": dynroute_zone takes "
                           "NAME SIZE [state=PATH] "
                           "[metrics=rules|tables|off]", &value[i]);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    dmcf->zone = ngx_shared_memory_add(cf, &name, size,
                                       &ngx_http_dynroute_module);
    if (dmcf->zone == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (dmcf->zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared memory zone \"%V\" is already used",
                           &name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    dmcf->zone->init = ngx_http_dynroute_init_zone;
    dmcf->zone->data = dmcf;
    dmcf->zone_file = cf->conf_file->file.name.data;
    dmcf->zone_line = cf->conf_file->line;
    dmcf->cycle = cf->cycle;

    return NGX_CONF_OK;
}


/*
 * After everything is parsed (postconfiguration): what the runtime state is
 * checked against, and the configured values the workers start from.
 */

ngx_int_t
ngx_http_dynroute_live_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                      i;
    ngx_http_dynroute_live_t       *live;
    ngx_http_dynroute_rollout_t   **rp;

    live = ngx_http_dynroute_conf_new<ngx_http_dynroute_live_t>(cf,
                                                                "dynroute");
    if (live == NULL) {
        return NGX_ERROR;
    }

    live->dmcf = dmcf;
    dmcf->live = live;

    if (dmcf->zone) {
        live->zone_name = dmcf->zone->shm.name;
    }

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    try {
        ngx_http_dynroute_table_info(dmcf, live->schema);

        /* what a flip may name: the registry's upstream{} blocks */

        ngx_http_dynroute_targets_each(dmcf,
            [&](ngx_http_dynroute_target_t &t) {

            if (t.kind == NGX_HTTP_DYNROUTE_TARGET_UPSTREAM) {
                live->schema.upstreams.emplace(
                    ngx_http_dynroute_view(t.name));
            }
        });

        for (i = 0; i < dmcf->rollouts.nelts; i++) {
            ngx_http_dynroute_rollout_t *ro = rp[i];
            dynroute::RolloutInfo info;
            std::vector<const ngx_http_upstream_srv_conf_t *> ups;

            ro->index = i;
            info.name = std::string(ngx_http_dynroute_view(ro->name));

            for (size_t v = 0; v < ro->variants.size(); v++) {
                info.variants.emplace_back(
                    ngx_http_dynroute_view(ro->variants[v].name));
                info.weights.push_back(ro->core->weight(v));
                info.upstreams.emplace_back(
                    ngx_http_dynroute_view(ro->variants[v].uscf->host));
                ups.push_back(ro->variants[v].uscf);
            }

            info.primary = ro->core->primary();
            live->schema.rollouts.push_back(std::move(info));
            live->configured.push_back(ups);
            live->upstreams.push_back(std::move(ups));
            live->cores.emplace_back();
        }

    } catch (...) {
        (void) ngx_http_dynroute_conf_caught(cf, "dynroute");
        return NGX_ERROR;
    }

    return NGX_OK;
}


const dynroute::Schema &
ngx_http_dynroute_live_schema(ngx_http_dynroute_live_t *live) noexcept
{
    return live->schema;
}


ngx_str_t
ngx_http_dynroute_live_zone_name(ngx_http_dynroute_live_t *live) noexcept
{
    return live->zone_name;
}


/* request time */


/*
 * Rebuilds this worker's values from the published version, if it can read
 * one whole; otherwise keeps the old ones and tries again on the next
 * request.  Allocates, once per change.
 */

static void
ngx_http_dynroute_live_refresh(ngx_http_dynroute_live_t *live) noexcept
{
    uint64_t                       g;
    ngx_http_dynroute_shm_t       *sh;
    ngx_http_dynroute_version_t   *v;

    sh = live->sh;
    g = ngx_http_dynroute_load(&sh->generation);
    v = ngx_http_dynroute_load_version(sh);

    if (v == NULL || !ngx_http_dynroute_in_zone(live, v, sizeof(*v))) {
        return;
    }

    size_t small_len = v->small_len, hosts_len = v->hosts_len;
    const u_char *small = v->small, *hosts = v->hosts;

    if (v->generation != g
        || !ngx_http_dynroute_in_zone(live, small, small_len)
        || (hosts && !ngx_http_dynroute_in_zone(live, hosts, hosts_len)))
    {
        return;
    }

    try {
        std::string text(reinterpret_cast<const char *>(small), small_len);

        __atomic_thread_fence(__ATOMIC_ACQUIRE);

        if (ngx_http_dynroute_load(&sh->generation) != g) {
            return;  /* freed while copied: the next request reads again */
        }

        std::vector<std::string> ignored;
        dynroute::State st = dynroute::load_state(text, live->schema,
                                                  ignored);

        auto cores = decltype(live->cores)(live->cores.size());
        auto upstreams = live->configured;
        auto rp = static_cast<ngx_http_dynroute_rollout_t **>(
                      live->dmcf->rollouts.elts);

        for (size_t i = 0; i < cores.size(); i++) {
            const dynroute::RolloutInfo &info = live->schema.rollouts[i];
            auto o = st.rollouts.find(info.name);

            if (o == st.rollouts.end()) {
                continue;
            }

            dynroute::Effective e = dynroute::effective(info, &o->second);

            cores[i] = std::make_unique<dynroute::Rollout>(*rp[i]->core);
            cores[i]->set_weights(e.weights);
            cores[i]->set_primary(e.primary);

            for (size_t k = 0; k < e.upstreams.size(); k++) {
                ngx_http_dynroute_target_t *t =
                    ngx_http_dynroute_target_exact(live->dmcf,
                                                   e.upstreams[k]);

                if (t && t->kind == NGX_HTTP_DYNROUTE_TARGET_UPSTREAM) {
                    upstreams[i][k] = t->uscf;
                }
            }
        }

        live->cores.swap(cores);
        live->upstreams.swap(upstreams);
        live->hosts = dynroute::HostsView(hosts, hosts ? hosts_len : 0);
        live->generation = g;

    } catch (const std::exception &e) {
        if (!live->stale_logged) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "dynroute: cannot read the runtime state of zone "
                          "\"%V\", routing by the previous one: %s",
                          &live->zone_name, e.what());
            live->stale_logged = true;
        }
    }
}


void
ngx_http_dynroute_live_sync(ngx_http_dynroute_live_t *live) noexcept
{
    if (live->sh
        && ngx_http_dynroute_load(&live->sh->generation) != live->generation)
    {
        ngx_http_dynroute_live_refresh(live);
    }
}


ngx_http_dynroute_route_t
ngx_http_dynroute_live_route(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_rollout_t *ro) noexcept
{
    const dynroute::Rollout *core = live->cores[ro->index].get();

    return { core ? core : ro->core.get(),
             live->upstreams[ro->index].data() };
}


/*
 * The runtime entry of host for the table named table, or NULL.  The block
 * searched may be freed by a writer meanwhile: the search stands only if
 * the generation did not change during it.
 */

ngx_http_dynroute_rule_t *
ngx_http_dynroute_live_host(ngx_http_dynroute_live_t *live,
    const ngx_str_t &table, const ngx_str_t &host) noexcept
{
    ngx_uint_t                       tries;
    ngx_http_dynroute_rule_t        *rule;
    dynroute::HostsView::Record      rec;

    for (tries = 0; tries < 4; tries++) {
        if (live->hosts.size() == 0) {
            return NULL;
        }

        rule = NULL;

        if (live->hosts.find(ngx_http_dynroute_view(host), rec)
            && rec.table == ngx_http_dynroute_view(table))
        {
            ngx_http_dynroute_target_t *t =
                ngx_http_dynroute_target_exact(live->dmcf, rec.target);
            rule = t ? t->rule : NULL;
        }

        __atomic_thread_fence(__ATOMIC_ACQUIRE);

        if (ngx_http_dynroute_load(&live->sh->generation) == live->generation)
        {
            return rule;
        }

        ngx_http_dynroute_live_refresh(live);
    }

    return NULL;
}


void
ngx_http_dynroute_live_status(ngx_http_dynroute_live_t *live,
    uint64_t *generation, bool *draining, size_t *runtime_hosts) noexcept
{
    *generation = live->sh ? ngx_http_dynroute_load(&live->sh->generation)
                           : 0;
    *draining = ngx_http_dynroute_live_draining(live);
    *runtime_hosts = live->hosts.size();
}


bool
ngx_http_dynroute_live_draining(ngx_http_dynroute_live_t *live) noexcept
{
    return live->sh && ngx_http_dynroute_load(&live->sh->draining);
}


/* writing, under the zone's mutex */


/* the published version as a State; throws */

static void
ngx_http_dynroute_decode(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v, dynroute::State &st,
    std::vector<std::string> &notices)
{
    std::string text(reinterpret_cast<const char *>(v->small), v->small_len);

    st = dynroute::load_state(text, live->schema, notices);

    dynroute::HostsView hosts(v->hosts, v->hosts ? v->hosts_len : 0);

    hosts.each([&](const dynroute::HostsView::Record &rec) {
        st.hosts[std::string(rec.host)] = {std::string(rec.table),
                                           std::string(rec.target)};
    });

    dynroute::prune(st, live->schema, notices);
}


static void
ngx_http_dynroute_cache(ngx_http_dynroute_live_t *live)
{
    std::vector<std::string> ignored;
    ngx_http_dynroute_version_t *v = live->sh->version;

    if (live->cached_generation == live->sh->generation) {
        return;
    }

    live->cached = dynroute::State();

    if (v) {
        ngx_http_dynroute_decode(live, v, live->cached, ignored);
    }

    live->cached_generation = live->sh->generation;
}


/*
 * The state file: written whole into a new temporary file next to it, then
 * fsync, rename over the file, fsync of the directory.  The directory may
 * be writable by the worker processes' user, so nothing there is trusted:
 * the temporary file gets a random name and is created exclusively
 * (mkostemp: O_CREAT|O_EXCL, which never follows a symbolic link), its
 * descriptor is checked to be a plain file of this process's own with one
 * link, and rename() replaces the file's name, never what a link there
 * points to.  Mode 0640 whatever the umask (nginx's daemon sets it to 0).
 * Only workers write it: a root master that loaded a file it had to prune
 * leaves the write to the first worker (ngx_http_dynroute_live_adopt).
 */

#define NGX_HTTP_DYNROUTE_STATE_MODE  0640

static bool
ngx_http_dynroute_persist(const ngx_str_t &path, const std::string &text,
    std::string &error)
{
    std::string file(ngx_http_dynroute_view(path));
    size_t slash = file.rfind('/');
    std::string dir = file.substr(0, slash + 1);
    std::string tmp = dir + "." + file.substr(slash + 1) + ".XXXXXX";
    struct stat st;
    int fd;

    fd = mkostemp(&tmp[0], O_CLOEXEC);
    if (fd == -1) {
        error = "cannot create a temporary file in \"" + dir + "\": "
                + std::strerror(errno);
        return false;
    }

    auto fail = [&](const std::string &what) {
        error = what + " \"" + tmp + "\": " + std::strerror(errno);
        close(fd);
        unlink(tmp.c_str());
        return false;
    };

    if (fstat(fd, &st) == -1) {
        return fail("cannot stat");
    }

    if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid()) {
        error = "\"" + tmp + "\" is not a new file of this process's own";
        close(fd);
        unlink(tmp.c_str());
        return false;
    }

    if (fchmod(fd, NGX_HTTP_DYNROUTE_STATE_MODE) == -1) {
        return fail("cannot chmod");
    }

    size_t done = 0;

    while (done < text.size()) {
        ssize_t n = write(fd, text.data() + done, text.size() - done);

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n <= 0) {
            return fail("cannot write");
        }

        done += static_cast<size_t>(n);
    }

    if (fsync(fd) == -1) {
        return fail("cannot sync");
    }

    if (close(fd) == -1) {
        fd = -1;
        error = "cannot close \"" + tmp + "\": " + std::strerror(errno);
        unlink(tmp.c_str());
        return false;
    }

    if (rename(tmp.c_str(), file.c_str()) == -1) {
        error = "cannot rename \"" + tmp + "\" to \"" + file + "\": "
                + std::strerror(errno);
        unlink(tmp.c_str());
        return false;
    }

    fd = open(dir.empty() ? "." : dir.c_str(),
              O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd != -1) {
        (void) fsync(fd);
        close(fd);
    }

    return true;
}


/*
 * Publishes st as the zone's new version (its hosts block is the current
 * one's when hosts_changed is false).  Returns false when the zone is full,
 * having changed nothing.
 */

static bool
ngx_http_dynroute_publish(ngx_http_dynroute_live_t *live,
    const dynroute::State &st, bool hosts_changed)
{
    ngx_slab_pool_t              *shpool = live->shpool;
    ngx_http_dynroute_shm_t      *sh = live->sh;
    ngx_http_dynroute_version_t  *old = sh->version, *v;

    std::string small = dynroute::dump_state(st, false);
    std::string hosts;

    if (hosts_changed || old == NULL) {
        hosts = dynroute::encode_hosts(st.hosts);
    }

    v = static_cast<ngx_http_dynroute_version_t *>(
            ngx_slab_alloc_locked(shpool, sizeof(*v)));
    if (v == NULL) {
        return false;
    }

    v->generation = st.generation;
    v->config = live->config;
    v->small_len = small.size();
    v->small = static_cast<u_char *>(ngx_slab_alloc_locked(shpool,
                                                           small.size()));

    if (hosts_changed || old == NULL) {
        v->hosts_len = hosts.size();
        v->hosts = static_cast<u_char *>(ngx_slab_alloc_locked(shpool,
                                                               hosts.size()));
    } else {
        v->hosts_len = old->hosts_len;
        v->hosts = old->hosts;
    }

    if (v->small == NULL || v->hosts == NULL) {
        if (v->small) {
            ngx_slab_free_locked(shpool, v->small);
        }
        if (v->hosts && (hosts_changed || old == NULL)) {
            ngx_slab_free_locked(shpool, v->hosts);
        }
        ngx_slab_free_locked(shpool, v);
        return false;
    }

    ngx_memcpy(v->small, small.data(), small.size());

    if (hosts_changed || old == NULL) {
        ngx_memcpy(v->hosts, hosts.data(), hosts.size());
    }

    /* the version first, then the generation that readers check */

    __atomic_store_n(&sh->version, v, __ATOMIC_RELEASE);
    __atomic_store_n(&sh->generation, st.generation, __ATOMIC_RELEASE);
    __atomic_store_n(&sh->draining, st.draining ? 1 : 0, __ATOMIC_RELEASE);

    if (old) {
        ngx_slab_free_locked(shpool, old->small);
        if (old->hosts != v->hosts) {
            ngx_slab_free_locked(shpool, old->hosts);
        }
        ngx_slab_free_locked(shpool, old);
    }

    return true;
}


/*
 * Runs f (which returns the answer's body, or throws dynroute::ApiError
 * with the status and reason) under the zone's mutex, with live->cached
 * current.  Returns the status; body is f's, or {"error": ...}.  log: where
 * an unexpected exception is logged, or NULL.
 */

template <typename F>
static ngx_int_t
ngx_http_dynroute_locked(ngx_http_dynroute_live_t *live, ngx_log_t *log,
    std::string &body, F f) noexcept
{
    ngx_int_t  status;

    ngx_shmtx_lock(&live->shpool->mutex);

    try {
        ngx_http_dynroute_cache(live);
        body = f();
        status = NGX_HTTP_OK;

    } catch (const dynroute::ApiError &e) {
        status = e.status;
        body = dynroute::render_error(e.what());

    } catch (const std::exception &e) {
        if (log) {
            ngx_log_error(NGX_LOG_ERR, log, 0, "dynroute: change refused: %s",
                          e.what());
        }

        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        body = "{\"error\":\"internal error\"}";
    }

    ngx_shmtx_unlock(&live->shpool->mutex);

    return status;
}


ngx_int_t
ngx_http_dynroute_live_read(ngx_http_dynroute_live_t *live,
    const ngx_http_dynroute_render_t &render, std::string &body) noexcept
{
    return ngx_http_dynroute_locked(live, NULL, body, [&] {
        return render(live->cached);
    });
}


/*
 * A worker of the current configuration adopts the published state: what
 * an older configuration's workers published may name what this one no
 * longer has, which is dropped here, with a notice each, and published
 * again; and the state file is written if the master could not (it loaded
 * a file that had to be pruned).  Under the zone's mutex.
 */

static void
ngx_http_dynroute_adopt_locked(ngx_http_dynroute_live_t *live,
    ngx_log_t *log)
{
    std::string                   error;
    dynroute::State               st;
    ngx_http_dynroute_shm_t      *sh = live->sh;
    std::vector<std::string>      notices;

    sh->current = live->config;

    if (sh->version == NULL) {
        return;
    }

    ngx_http_dynroute_decode(live, sh->version, st, notices);
    st.generation = sh->generation;

    for (const auto &n : notices) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0, "dynroute: %s", n.c_str());
    }

    if (!notices.empty()) {
        if (st.generation == dynroute::max_generation) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "dynroute: the generation of zone \"%V\" is at "
                          "its limit: cannot publish the pruned state",
                          &live->zone_name);
            return;
        }

        st.generation++;

        if (!ngx_http_dynroute_publish(live, st, true)) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "dynroute: dynroute_zone \"%V\" is full: cannot "
                          "publish the pruned state", &live->zone_name);
            return;
        }

        sh->unsaved = 1;
    }

    live->cached = st;
    live->cached_generation = st.generation;

    if (sh->unsaved && live->dmcf->state.len) {
        if (!ngx_http_dynroute_persist(live->dmcf->state,
                                       dynroute::dump_state(st, true), error))
        {
            ngx_log_error(NGX_LOG_ERR, log, 0, "dynroute: %s", error.c_str());
            return;
        }
    }

    sh->unsaved = 0;
}


void
ngx_http_dynroute_live_adopt(ngx_http_dynroute_live_t *live, ngx_log_t *log)
    noexcept
{
    if (live == NULL || live->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&live->shpool->mutex);

    try {
        if (live->config > live->sh->current) {
            ngx_http_dynroute_adopt_locked(live, log);
        }

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "dynroute: cannot adopt the runtime state of zone "
                      "\"%V\": %s", &live->zone_name, e.what());
    }

    ngx_shmtx_unlock(&live->shpool->mutex);
}


ngx_int_t
ngx_http_dynroute_live_write(ngx_http_dynroute_live_t *live, ngx_log_t *log,
    int64_t if_match, const std::function<void(dynroute::State &)> &change,
    const ngx_http_dynroute_render_t &render, std::string &body) noexcept
{
    return ngx_http_dynroute_locked(live, log, body, [&] {

        /*
         * A worker of a configuration older than the current one (a reload
         * happened while this request was read) would check the change
         * against what that configuration had and publish over what the
         * newer one's workers published: it refuses, and the client sends
         * the request again, to a worker of the new configuration.
         */

        if (live->config > live->sh->current) {
            ngx_http_dynroute_adopt_locked(live, log);
            ngx_http_dynroute_cache(live);
        }

        if (live->config < live->sh->current || ngx_exiting || ngx_quit) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "dynroute: change refused: this worker runs the "
                          "configuration from before the last reload");
            throw dynroute::ApiError(NGX_HTTP_SERVICE_UNAVAILABLE,
                "this request reached a worker of the configuration from "
                "before nginx's last reload: nothing changed, send it "
                "again");
        }

        const dynroute::State &cur = live->cached;

        if (if_match >= 0 && static_cast<uint64_t>(if_match) != cur.generation)
        {
            throw dynroute::ApiError(NGX_HTTP_CONFLICT,
                "the state is at generation " + std::to_string(cur.generation)
                + ", not " + std::to_string(if_match)
                + " (If-Match): read it again");
        }

        if (cur.generation >= dynroute::max_generation) {
            throw dynroute::ApiError(NGX_HTTP_CONFLICT,
                "the state is at generation " + std::to_string(cur.generation)
                + ", the largest there is: nothing changed");
        }

        dynroute::State next = cur;
        change(next);
        next.generation = cur.generation + 1;

        bool hosts_changed = next.hosts != cur.hosts;
        std::string error;

        if (live->dmcf->state.len
            && !ngx_http_dynroute_persist(live->dmcf->state,
                                          dynroute::dump_state(next, true),
                                          error))
        {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "dynroute: change refused: %s", error.c_str());
            throw dynroute::ApiError(NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "the state file could not be written, "
                                     "nothing changed: " + error);
        }

        if (!ngx_http_dynroute_publish(live, next, hosts_changed)) {
            /* the file already holds next: put the current state back */
            if (live->dmcf->state.len) {
                (void) ngx_http_dynroute_persist(live->dmcf->state,
                           dynroute::dump_state(cur, true), error);
            }

            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "dynroute: change refused: dynroute_zone \"%V\" "
                          "is full", &live->zone_name);
            throw dynroute::ApiError(NGX_HTTP_INSUFFICIENT_STORAGE,
                "dynroute_zone \""
                + std::string(ngx_http_dynroute_view(live->zone_name))
                + "\" is full, nothing changed: make it larger");
        }

        live->cached = std::move(next);
        live->cached_generation = live->cached.generation;
        live->sh->unsaved = 0;

        return render(live->cached);
    });
}


/* the zone: at start, and on each reload */


/* the state file can be replaced by the worker processes' user */

static ngx_int_t
ngx_http_dynroute_check_state_path(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_log_t *log) noexcept
{
    struct stat       st;
    ngx_core_conf_t  *ccf;

    std::string file(ngx_http_dynroute_view(dmcf->state));
    std::string dir = file.substr(0, file.rfind('/'));

    if (dir.empty()) {
        dir = "/";
    }

    ccf = reinterpret_cast<ngx_core_conf_t *>(
              ngx_get_conf(dmcf->cycle->conf_ctx, ngx_core_module));

    const char *why = NULL;

    if (stat(dir.c_str(), &st) == -1) {
        why = std::strerror(errno);

    } else if (!S_ISDIR(st.st_mode)) {
        why = "not a directory";

    } else if (access(dir.c_str(), W_OK) == -1) {
        why = std::strerror(errno);

    } else if (ccf->user != 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
               && geteuid() == 0
               && !(st.st_uid == ccf->user && (st.st_mode & S_IWUSR))
               && !(st.st_gid == ccf->group && (st.st_mode & S_IWGRP))
               && !(st.st_mode & S_IWOTH))
    {
        why = "the worker processes' user cannot write there";
    }

    if (why) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "dynroute_zone \"%V\" in %s:%ui: cannot keep the state "
                      "file \"%V\" in \"%s\": %s", &dmcf->zone->shm.name,
                      dmcf->zone_file, dmcf->zone_line, &dmcf->state,
                      dir.c_str(), why);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The state file's contents, or false (no file yet, or one that cannot be
 * read).  The master reads it as root from a directory the workers' user
 * may write: a symbolic link or anything but a plain file is refused.
 */

static bool
ngx_http_dynroute_read_state(ngx_http_dynroute_main_conf_t *dmcf,
    std::string &text, ngx_log_t *log)
{
    struct stat  st;

    std::string file(ngx_http_dynroute_view(dmcf->state));
    int fd = open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK
                                | O_CLOEXEC);

    if (fd == -1) {
        if (errno == ELOOP) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "dynroute: the state file \"%V\" is a symbolic "
                          "link, which is not followed: starting from the "
                          "configuration", &dmcf->state);

        } else if (errno != ENOENT) {
            ngx_log_error(NGX_LOG_ERR, log, errno,
                          "dynroute: cannot open the state file \"%V\", "
                          "starting from the configuration", &dmcf->state);
        }

        return false;
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "dynroute: the state file \"%V\" is not a plain "
                      "file: starting from the configuration", &dmcf->state);
        close(fd);
        return false;
    }

    char buf[65536];

    for ( ;; ) {
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1) {
            ngx_log_error(NGX_LOG_ERR, log, errno,
                          "dynroute: cannot read the state file \"%V\", "
                          "starting from the configuration", &dmcf->state);
            close(fd);
            return false;
        }

        if (n == 0) {
            break;
        }

        text.append(buf, static_cast<size_t>(n));
    }

    close(fd);
    return true;
}


static ngx_int_t
ngx_http_dynroute_init_zone(ngx_shm_zone_t *shm_zone, void *data) noexcept
{
    ngx_http_dynroute_main_conf_t *dmcf =
        static_cast<ngx_http_dynroute_main_conf_t *>(shm_zone->data);

    bool                       reused;
    ngx_log_t                 *log;
    ngx_slab_pool_t           *shpool;
    ngx_http_dynroute_live_t  *live;
    ngx_http_dynroute_shm_t   *sh;

    live = dmcf->live;
    log = shm_zone->shm.log;
    shpool = reinterpret_cast<ngx_slab_pool_t *>(shm_zone->shm.addr);

    if (dmcf->state.len
        && ngx_http_dynroute_check_state_path(dmcf, log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    reused = (data != NULL);

    if (reused) {
        sh = static_cast<ngx_http_dynroute_shm_t *>(shpool->data);

    } else {
        sh = static_cast<ngx_http_dynroute_shm_t *>(
                 ngx_slab_calloc(shpool, sizeof(ngx_http_dynroute_shm_t)));
        if (sh == NULL) {
            return NGX_ERROR;
        }

        ngx_rbtree_init(&sh->series, &sh->sentinel,
                        ngx_str_rbtree_insert_value);

        shpool->data = sh;
        shpool->log_nomem = 0;  /* a full zone is the API's 507 */
    }

    live->shpool = shpool;
    live->sh = sh;

    ngx_shmtx_lock(&shpool->mutex);

    ngx_int_t rc = NGX_OK;

    live->config = ++sh->configs;

    /*
     * A reload finds the latest state in the zone and leaves it there: the
     * first worker of this configuration prunes it to what it has, if the
     * reload succeeds (ngx_http_dynroute_live_adopt).  A start (or nginx
     * -t) reads the state file and publishes it pruned, but does not write
     * the file: a master that runs as root writes nothing where the
     * workers' user may plant a link; the first worker does.
     */

    try {
        if (!reused || sh->version == NULL) {
            dynroute::State st;
            std::vector<std::string> notices;
            std::string text;

            if (dmcf->state.len
                && ngx_http_dynroute_read_state(dmcf, text, log))
            {
                try {
                    st = dynroute::load_state(text, live->schema, notices);

                } catch (const dynroute::ConfigError &e) {
                    ngx_log_error(NGX_LOG_ERR, log, 0,
                                  "dynroute: ignoring the state file \"%V\", "
                                  "starting from the configuration: %s",
                                  &dmcf->state, e.what());
                    st = dynroute::State();
                    notices.clear();
                }
            }

            for (const auto &n : notices) {
                ngx_log_error(NGX_LOG_NOTICE, log, 0, "dynroute: %s",
                              n.c_str());
            }

            if (!notices.empty()) {
                st.generation++;
            }

            if (!ngx_http_dynroute_publish(live, st, true)) {
                ngx_log_error(NGX_LOG_EMERG, log, 0,
                              "dynroute_zone \"%V\" in %s:%ui is too small "
                              "for its state", &shm_zone->shm.name,
                              dmcf->zone_file, dmcf->zone_line);
                rc = NGX_ERROR;
            }

            sh->unsaved = !notices.empty();
        }

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "dynroute_zone \"%V\": %s",
                      &shm_zone->shm.name, e.what());
        rc = NGX_ERROR;
    }

    if (rc == NGX_OK) {
        rc = ngx_http_dynroute_metrics_init(dmcf, shpool, &sh->series, log);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}
