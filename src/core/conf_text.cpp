#include "conf_text.hpp"

namespace dynroute {

namespace {

bool is_space(char c) noexcept
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

}  // namespace

std::vector<std::size_t> directive_lines(std::string_view text,
                                         std::size_t line)
{
    std::vector<std::size_t> lines;
    const std::size_t n = text.size();
    std::size_t i = 0;

    // the character at i is read: a newline starts the next line
    auto next = [&] {
        if (text[i++] == '\n') {
            line++;
        }
    };

    while (i < n) {
        const char c = text[i];

        if (is_space(c)) {
            next();
            continue;
        }

        if (c == '#') {
            while (i < n && text[i] != '\n') {
                next();
            }
            continue;
        }

        if (c == ';') {
            if (i + 1 != n || lines.empty()) {
                return {};
            }
            return lines;
        }

        if (c == '{' || c == '}') {
            return {};
        }

        lines.push_back(line);

        if (c == '"' || c == '\'') {
            next();

            while (i < n && text[i] != c) {
                if (text[i] == '\\' && i + 1 < n) {
                    next();
                }
                next();
            }

            if (i == n) {
                return {};
            }

            next();   // the closing quote

            // nginx wants a space or the end of the directive after it
            if (i < n && !is_space(text[i]) && text[i] != ';') {
                return {};
            }

            continue;
        }

        bool variable = false;

        while (i < n) {
            const char t = text[i];

            if (t == '{' && variable) {
                next();
                continue;
            }

            variable = false;

            if (t == '\\') {
                next();
                if (i < n) {
                    next();
                }
                continue;
            }

            if (t == '$') {
                variable = true;
                next();
                continue;
            }

            if (is_space(t) || t == ';' || t == '{') {
                break;
            }

            next();
        }
    }

    return {};
}

}  // namespace dynroute
