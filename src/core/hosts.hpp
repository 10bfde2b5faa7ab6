// Runtime host entries in one flat block of bytes: an open-addressing hash
// of host names that every worker reads in place, in shared memory, without
// a lock and without copying.
//
// A block is written once (encode) and never changed: a change to the
// entries writes a new block.  Readers may therefore be handed a block that
// a writer is freeing at the same moment; the nginx glue detects that by the
// zone's generation and retries, and this reader only has to stay inside
// the bytes it was given, whatever they contain.  Every offset and length
// read from the block is checked against its size.
//
// Layout (native byte order: the block never leaves the machine):
//   header   magic, mask (slots - 1), count, arena size     4 x uint32
//   slots    (tag, offset + 1) per slot, 0 for an empty     2 x uint32
//   arena    records: table length, host length, target length, one
//            spare byte, then the three names
// Pure C++17, no nginx headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace dynroute {

struct HostEntry {
    std::string table;   // the dynroute_table that consults it
    std::string target;  // an upstream{} or a rollout of the configuration
};

inline bool operator==(const HostEntry &a, const HostEntry &b)
{
    return a.table == b.table && a.target == b.target;
}

using HostMap = std::map<std::string, HostEntry>;

// Checks a runtime host name and returns it lowercased, without one
// trailing dot: letters, digits, '-', '_' and '.', labels of 1 to 63
// bytes, 253 bytes in all; not an IP address (the table's ip rule serves
// those), no wildcard.  Returns false with a reason in `why`.
bool normalize_host(std::string_view in, std::string &out, std::string &why);

// The block for these entries.  Names longer than 255 bytes are refused by
// the API before they get here.
std::string encode_hosts(const HostMap &hosts);

// Bytes each entry costs in a block, on average over `hosts` (for sizing).
std::size_t hosts_block_size(std::size_t count, std::size_t name_bytes);

class HostsView {
public:
    HostsView() noexcept = default;
    HostsView(const void *data, std::size_t size) noexcept;

    bool valid() const noexcept { return count_ != 0 || mask_ != 0; }
    std::size_t size() const noexcept { return count_; }

    struct Record {
        std::string_view table, host, target;
    };

    // The entry for host (lowercase, no trailing dot), or false.
    bool find(std::string_view host, Record &out) const noexcept;

    // Every entry, in the order they were encoded; stops at the first
    // record that does not fit (a block being freed).  Returns false then.
    template <class F> bool each(F &&f) const
    {
        std::size_t off = 0;
        Record rec;
        for (std::size_t i = 0; i < count_; i++) {
            if (!record(off, rec, off)) {
                return false;
            }
            f(rec);
        }
        return true;
    }

    static std::uint64_t hash(std::string_view host) noexcept;

private:
    bool record(std::size_t off, Record &out, std::size_t &next) const
        noexcept;

    const unsigned char *slots_ = nullptr;
    const unsigned char *arena_ = nullptr;
    std::uint32_t mask_ = 0;
    std::uint32_t count_ = 0;
    std::uint32_t arena_size_ = 0;
};

}  // namespace dynroute
