/*
 * The state file of a dynroute_zone (state=PATH): every accepted change,
 * written before it is answered; read when nginx starts.
 *
 * The directory may be writable by the worker processes' user, so nothing
 * there is trusted: see ngx_http_dynroute_state_write, and the directory's
 * owner and mode in docs/runtime-api.md (Persistence).
 */

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "ngx_http_dynroute_zone.hpp"


/* the state file can be replaced by the worker processes' user */

ngx_int_t
ngx_http_dynroute_state_check_path(ngx_http_dynroute_main_conf_t *dmcf,
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

bool
ngx_http_dynroute_state_read(ngx_http_dynroute_main_conf_t *dmcf,
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


/*
 * The state file: written whole into a new temporary file next to it
 * (prepare: write, fsync), then renamed over the file (commit) and the
 * directory synced.  The directory may be writable by the worker
 * processes' user, so nothing there is trusted: the temporary file gets a
 * random name and is created exclusively (mkostemp: O_CREAT|O_EXCL, which
 * never follows a symbolic link), its descriptor is checked to be a plain
 * file of this process's own with one link, and rename() replaces the
 * file's name, never what a link there points to.  Mode 0640 whatever the
 * umask (nginx's daemon sets it to 0).  Only workers write it: a root
 * master that loaded a file it had to prune leaves the write to the first
 * worker (ngx_http_dynroute_live_adopt).
 *
 * A writer prepares outside the zone's mutex and commits under it, in the
 * order of the snapshots it publishes.
 */

#define NGX_HTTP_DYNROUTE_STATE_MODE  0640


static std::string
ngx_http_dynroute_state_dir(const std::string &file)
{
    return file.substr(0, file.rfind('/') + 1);
}


bool
ngx_http_dynroute_state_prepare(const ngx_str_t &path,
    const std::string &text, std::string &tmp, std::string &error)
{
    std::string file(ngx_http_dynroute_view(path));
    std::string dir = ngx_http_dynroute_state_dir(file);
    struct stat st;
    int fd;

    tmp = dir + "." + file.substr(file.rfind('/') + 1) + ".XXXXXX";

    fd = mkostemp(&tmp[0], O_CLOEXEC);
    if (fd == -1) {
        error = "cannot create a temporary file in \"" + dir + "\": "
                + std::strerror(errno);
        tmp.clear();
        return false;
    }

    auto fail = [&](const std::string &what) {
        error = what + " \"" + tmp + "\": " + std::strerror(errno);
        close(fd);
        ngx_http_dynroute_state_discard(tmp);
        return false;
    };

    if (fstat(fd, &st) == -1) {
        return fail("cannot stat");
    }

    if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid()) {
        error = "\"" + tmp + "\" is not a new file of this process's own";
        close(fd);
        ngx_http_dynroute_state_discard(tmp);
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
        error = "cannot close \"" + tmp + "\": " + std::strerror(errno);
        ngx_http_dynroute_state_discard(tmp);
        return false;
    }

    return true;
}


bool
ngx_http_dynroute_state_commit(const ngx_str_t &path, std::string &tmp,
    std::string &error)
{
    std::string file(ngx_http_dynroute_view(path));

    if (rename(tmp.c_str(), file.c_str()) == -1) {
        error = "cannot rename \"" + tmp + "\" to \"" + file + "\": "
                + std::strerror(errno);
        ngx_http_dynroute_state_discard(tmp);
        return false;
    }

    tmp.clear();

    return true;
}


void
ngx_http_dynroute_state_discard(std::string &tmp) noexcept
{
    if (!tmp.empty()) {
        (void) unlink(tmp.c_str());
        tmp.clear();
    }
}


/* after a commit: the directory's entry made durable too */

void
ngx_http_dynroute_state_sync(const ngx_str_t &path)
{
    std::string dir = ngx_http_dynroute_state_dir(
                          std::string(ngx_http_dynroute_view(path)));
    int fd = open(dir.empty() ? "." : dir.c_str(),
                  O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd != -1) {
        (void) fsync(fd);
        close(fd);
    }
}


bool
ngx_http_dynroute_state_write(const ngx_str_t &path, const std::string &text,
    std::string &error)
{
    std::string tmp;

    if (!ngx_http_dynroute_state_prepare(path, text, tmp, error)
        || !ngx_http_dynroute_state_commit(path, tmp, error))
    {
        return false;
    }

    ngx_http_dynroute_state_sync(path);

    return true;
}
