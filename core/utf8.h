// Strict UTF-8 validation, shared by prep's row checks (data/text.h) and the config loader
// (YAML text must be Unicode: a config value that is not UTF-8 cannot be written back by
// to_yaml and read as the same bytes).
#pragma once

#include <cstddef>
#include <string_view>

namespace portrait {

/// Byte offset of the first byte that starts an invalid sequence (overlong forms, surrogates,
/// code points above U+10FFFF, truncated sequences), or std::string_view::npos when `s` is
/// valid UTF-8.
size_t utf8_error_offset(std::string_view s);
inline bool valid_utf8(std::string_view s) { return utf8_error_offset(s) == std::string_view::npos; }

}  // namespace portrait
