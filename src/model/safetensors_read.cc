// Reading .safetensors: map the file, then trust nothing in it. Every check below exists because
// a truncated download, a buggy exporter or a hostile file can lie about it, and a lie must
// become a Status naming the file, never an out-of-bounds read.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <system_error>

#include "megalith/core/json_depth.h"
#include "megalith/model/safetensors.h"

namespace megalith {

namespace {

using nlohmann::json;

// The reference implementation refuses larger headers; a real one is a few hundred KB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests three deep ({name: {"shape": [..]}}); refusing deeper input keeps a
// header of a hundred million '[' from becoming a hundred million heap nodes.
constexpr int kMaxJsonDepth = 8;

// Every dtype of the safetensors spec, with its element size. Only F32, BF16 and F16 become a
// DType; the others are still parsed so that the data layout can be checked and a loader can say
// which tensor has which unsupported dtype.
struct SpecDType {
  std::string_view name;
  uint64_t size;
};
constexpr SpecDType kSpecDTypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
    {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8},
};

std::optional<uint64_t> safetensors_dtype_size(std::string_view name) {
  for (const SpecDType& t : kSpecDTypes)
    if (t.name == name) return t.size;
  return std::nullopt;
}

std::string safetensors_dtype_list() {
  std::string s;
  for (const SpecDType& t : kSpecDTypes) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

std::string errno_message(int e) { return std::generic_category().message(e); }

// A JSON value for an error message, cut short: the header may be 100 MB.
std::string brief(const json& v) {
  std::string s = v.dump();
  constexpr size_t kMax = 60;
  if (s.size() > kMax) s = s.substr(0, kMax) + "...";
  return s;
}

std::optional<uint64_t> as_uint(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  return std::nullopt;
}

// Fills `e` from the header object of tensor `name`; the data pointer is set by the caller.
Status parse_entry(const std::string& file, const std::string& name, const json& v,
                   uint64_t data_size, SafetensorsEntry* e) {
  const std::string where = fmt::format("{}: tensor '{}'", file, name);
  if (!v.is_object()) {
    return data_loss("{}: expected an object with dtype, shape and data_offsets, got {}", where,
                     brief(v));
  }

  auto dtype_it = v.find("dtype");
  if (dtype_it == v.end()) return data_loss("{}: missing \"dtype\"", where);
  if (!dtype_it->is_string()) {
    return data_loss("{}: \"dtype\" must be a string, got {}", where, brief(*dtype_it));
  }
  e->dtype_name = dtype_it->get<std::string>();
  const std::optional<uint64_t> elem_size = safetensors_dtype_size(e->dtype_name);
  if (!elem_size) {
    return data_loss("{}: unknown dtype '{}' (safetensors defines {})", where, e->dtype_name,
                     safetensors_dtype_list());
  }
  e->dtype = dtype_from_safetensors_name(e->dtype_name);

  auto shape_it = v.find("shape");
  if (shape_it == v.end()) return data_loss("{}: missing \"shape\"", where);
  const auto bad_shape = [&] {
    return data_loss("{}: \"shape\" must be an array of non-negative integers, got {}", where,
                     brief(*shape_it));
  };
  if (!shape_it->is_array()) return bad_shape();
  e->shape.clear();
  e->shape.reserve(shape_it->size());
  bool empty = false;
  for (const json& d : *shape_it) {
    const std::optional<uint64_t> dim = as_uint(d);
    if (!dim) return bad_shape();
    // Shape holds int64_t; no real tensor has a dimension beyond it.
    if (*dim > uint64_t(std::numeric_limits<int64_t>::max())) {
      return data_loss("{}: shape {} has a dimension beyond 2^63", where, brief(*shape_it));
    }
    e->shape.push_back(int64_t(*dim));
    empty |= *dim == 0;
  }
  // The product is checked only without a zero dimension: [2^32, 2^32, 0] is a valid empty
  // tensor, while [2^32, 2^32] wraps to zero.
  uint64_t numel = 1, nbytes = 0;
  if (!empty) {
    bool overflow = false;
    for (int64_t d : e->shape) overflow |= __builtin_mul_overflow(numel, uint64_t(d), &numel);
    overflow |= numel > uint64_t(std::numeric_limits<int64_t>::max());
    overflow |= __builtin_mul_overflow(numel, *elem_size, &nbytes);
    if (overflow) {
      return data_loss("{}: shape {} has more bytes than fit in 64 bits", where, brief(*shape_it));
    }
  }

  auto offsets_it = v.find("data_offsets");
  if (offsets_it == v.end()) return data_loss("{}: missing \"data_offsets\"", where);
  const json& offsets = *offsets_it;
  std::optional<uint64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = as_uint(offsets[0]);
    end = as_uint(offsets[1]);
  }
  if (!begin || !end) {
    return data_loss("{}: \"data_offsets\" must be [begin, end] of non-negative integers, got {}",
                     where, brief(offsets));
  }
  if (*begin > *end) {
    return data_loss("{}: data_offsets [{}, {}] begin after they end", where, *begin, *end);
  }
  if (*end > data_size) {
    return data_loss("{}: data_offsets [{}, {}] end beyond the data section ({} bytes)", where,
                     *begin, *end, data_size);
  }
  if (*end - *begin != nbytes) {
    return data_loss("{}: data_offsets [{}, {}] hold {} bytes but {} {} needs {} bytes", where,
                     *begin, *end, *end - *begin, e->dtype_name, brief(*shape_it), nbytes);
  }
  e->begin = *begin;
  e->end = *end;
  return {};
}

Status parse_metadata(const std::string& file, const json& v,
                      std::map<std::string, std::string>* metadata) {
  if (!v.is_object()) {
    return data_loss("{}: \"__metadata__\" must be an object of strings, got {}", file, brief(v));
  }
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string()) {
      return data_loss("{}: \"__metadata__\" value of '{}' must be a string, got {}", file, key,
                       brief(value));
    }
    (*metadata)[key] = value.get<std::string>();
  }
  return {};
}

// The spec requires the tensors to tile the data section: no overlap (two tensors aliasing the
// same bytes), no hole and no trailing bytes (room to smuggle data past a reviewer).
Status check_layout(const std::string& file, const std::map<std::string, SafetensorsEntry>& entries,
                    uint64_t data_size) {
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> order;
  order.reserve(entries.size());
  for (const auto& [name, e] : entries) order.emplace_back(&name, &e);
  // Empty tensors sort before the tensor starting at their offset, so they never look like holes.
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second->begin, a.second->end) < std::pair(b.second->begin, b.second->end);
  });
  uint64_t cursor = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, e] : order) {
    if (e->begin < cursor) {
      return data_loss(
          "{}: tensors '{}' and '{}' overlap: '{}' begins at byte {}, before '{}' "
          "ends at byte {}",
          file, *previous, *name, *name, e->begin, *previous, cursor);
    }
    if (e->begin > cursor) {
      return data_loss("{}: hole in the data section: bytes [{}, {}) belong to no tensor", file,
                       cursor, e->begin);
    }
    cursor = e->end;
    previous = name;
  }
  if (cursor != data_size) {
    return data_loss("{}: hole in the data section: bytes [{}, {}) belong to no tensor", file,
                     cursor, data_size);
  }
  return {};
}

// Closes a descriptor on every return path of `open`.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(
    const std::filesystem::path& path) {
  const std::string file = path.string();
  // O_NONBLOCK so that a FIFO is refused below instead of blocking the open forever.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return not_found("{}: no such file", file);
    return io_error("{}: cannot open: {}", file, errno_message(e));
  }
  FdCloser closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return io_error("{}: cannot stat: {}", file, errno_message(errno));
  if (S_ISDIR(st.st_mode)) {
    return invalid_argument("{}: is a directory, not a .safetensors file", file);
  }
  if (!S_ISREG(st.st_mode)) return invalid_argument("{}: is not a regular file", file);
  const uint64_t size = uint64_t(st.st_size);
  // Checked before mmap, which refuses a zero length.
  if (size == 0) return data_loss("{}: file is empty", file);
  if (size < 8) {
    return data_loss("{}: file is {} bytes, shorter than its 8-byte header length", file, size);
  }

  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (mapping == MAP_FAILED) return io_error("{}: cannot mmap: {}", file, errno_message(errno));
  std::unique_ptr<SafetensorsFile> st_file(new SafetensorsFile());  // unmaps on every error
  st_file->path_ = path;
  st_file->mapping_ = mapping;
  st_file->mapping_size_ = size;
  const auto* bytes = static_cast<const unsigned char*>(mapping);

  uint64_t header_len = 0;  // little-endian, assembled bytewise: no unaligned or endian trouble
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes) {
    return data_loss("{}: header length {} exceeds the {}-byte limit (corrupt file?)", file,
                     header_len, kMaxHeaderBytes);
  }
  if (header_len > size - 8) {
    return data_loss("{}: header length {} runs past the end of the {}-byte file (truncated?)",
                     file, header_len, size);
  }
  const auto* header_begin = reinterpret_cast<const char*>(bytes + 8);
  const std::string_view header(header_begin, header_len);
  // JSON text never holds a raw NUL, but nlohmann's parser stops at one and would accept
  // whatever follows it.
  if (header.find('\0') != std::string_view::npos) {
    return data_loss("{}: header is not valid JSON (it contains a NUL byte)", file);
  }
  if (json_nests_deeper_than(header, kMaxJsonDepth)) {
    return data_loss("{}: header JSON nests deeper than {} levels", file, kMaxJsonDepth);
  }
  const json root = json::parse(header.begin(), header.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return data_loss("{}: header is not valid JSON", file);
  if (!root.is_object()) {
    return data_loss("{}: header must be a JSON object, got {}", file, brief(root));
  }

  const uint64_t data_size = size - 8 - header_len;
  const std::byte* data = reinterpret_cast<const std::byte*>(bytes + 8 + header_len);
  st_file->data_section_ = std::span<const std::byte>(data, data_size);
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      MEGALITH_RETURN_IF_ERROR(parse_metadata(file, value, &st_file->metadata_));
      continue;
    }
    SafetensorsEntry entry;
    MEGALITH_RETURN_IF_ERROR(parse_entry(file, name, value, data_size, &entry));
    entry.data = data + entry.begin;
    st_file->entries_.emplace(name, std::move(entry));
  }
  MEGALITH_RETURN_IF_ERROR(check_layout(file, st_file->entries_, data_size));
  return st_file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace megalith
