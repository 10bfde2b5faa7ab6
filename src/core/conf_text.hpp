// The text of the configuration as nginx's parser reads it, for messages
// that name a line nginx does not keep: which line each parameter of a
// directive was written on.  Pure C++17.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace dynroute {

// The line that each token of one directive begins on.  text: the file from
// just after the previous directive (its ";", or the "{" of the block) to
// the ";" that ends this one, included; line: the line that text begins
// on.  Tokens, comments and quotes as nginx reads them: a "#" at the start
// of a token comments out the rest of the line, '...' and "..." quote, a
// backslash escapes the next character, "${" does not open a block.
// Empty if text is not one directive ended by its last character.
std::vector<std::size_t> directive_lines(std::string_view text,
                                         std::size_t line);

}  // namespace dynroute
