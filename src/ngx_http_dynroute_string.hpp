/*
 * nginx strings and header lists, seen from C++: a borrowed view for the
 * core, a keyword test for configuration words, and header names compared
 * letter case aside.  Shared by the glue of every dynroute module.
 */
#pragma once

#include <string_view>

#include "ngx.hpp"


/* a borrowed view of an nginx string, for the core */
static inline std::string_view
ngx_http_dynroute_view(const ngx_str_t &s) noexcept
{
    return std::string_view(reinterpret_cast<const char *>(s.data), s.len);
}


/* a configuration word equals a keyword */
static inline bool
ngx_http_dynroute_is(const ngx_str_t &word, const char *keyword) noexcept
{
    size_t  len = ngx_strlen(keyword);

    return word.len == len && ngx_strncmp(word.data, keyword, len) == 0;
}


/* two nginx strings are equal, byte for byte */
static inline bool
ngx_http_dynroute_eq(const ngx_str_t &a, const ngx_str_t &b) noexcept
{
    return a.len == b.len && ngx_strncmp(a.data, b.data, a.len) == 0;
}


/* calls f(h) for every element of an nginx header list, in order */
template <typename F>
static inline void
ngx_http_dynroute_each_header(ngx_list_t *headers, F &&f) noexcept
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    for (part = &headers->part; part; part = part->next) {
        h = static_cast<ngx_table_elt_t *>(part->elts);

        for (i = 0; i < part->nelts; i++) {
            f(h[i]);
        }
    }
}


/* a header's name is name, letter case aside */
static inline bool
ngx_http_dynroute_header_is(const ngx_table_elt_t &h, std::string_view name)
    noexcept
{
    return h.key.len == name.size()
           && ngx_strncasecmp(h.key.data,
                  reinterpret_cast<u_char *>(const_cast<char *>(name.data())),
                  name.size())
              == 0;
}
