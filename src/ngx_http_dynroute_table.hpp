/*
 * dynroute_table and dynroute (ngx_http_dynroute_table.cpp): a table's
 * rules, compiled by the core when the block is read, and the directive
 * that puts a table in effect in a server or location.
 */
#pragma once

#include "ngx_http_dynroute.hpp"
#include "state.hpp"


char *ngx_http_dynroute_table_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_dynroute(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept;

/* where rule id of table was written: until the checks only */
void ngx_http_dynroute_table_where(ngx_http_dynroute_table_t *table,
    ngx_uint_t id, u_char **file, ngx_uint_t *line) noexcept;
/* the checks are done: forget where the rules were written */
void ngx_http_dynroute_table_forget_where(ngx_http_dynroute_table_t *table)
    noexcept;

/* the tables, as the runtime state checks names */
void ngx_http_dynroute_table_info(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::Schema &schema);
