#pragma once
// Small hashes implemented here because core/ may not link OpenSSL: FNV-1a 64 for revision
// identities (fast, stable, not secret) and SHA-256 for the tracked-config checksums, which must
// match Flagger's byte for byte (first 8 bytes of sha256 of the Go JSON of the data, in hex).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace canaryd::core {

std::uint64_t fnv1a64(std::string_view data) noexcept;

using sha256_digest = std::array<std::uint8_t, 32>;
sha256_digest sha256(std::string_view data) noexcept;

// Lowercase hex of bytes / of a 64-bit value (16 digits, zero-padded).
std::string to_hex(const std::uint8_t* data, std::size_t size);
std::string to_hex(std::uint64_t value);

}  // namespace canaryd::core
