// Writing .safetensors in the layout transformers and the safetensors library produce, streaming
// tensor data through bounded buffers so that writing a checkpoint never holds it in memory.
#include <bit>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <system_error>

#include "megalith/model/safetensors.h"

namespace megalith {

namespace fs = std::filesystem;

// fill() produces host-order elements and safetensors is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors needs a little-endian host");

namespace {

// Elements per fill() call: 4 MB of f32, small enough to stay in cache-friendly buffers.
constexpr int64_t kChunkElements = int64_t{1} << 20;

std::string errno_message(int e) { return std::generic_category().message(e); }

// Bytes of `t`, or an error when its shape is not a shape.
StatusOr<uint64_t> tensor_bytes(const fs::path& path, const TensorToWrite& t) {
  uint64_t numel = 1;
  bool overflow = false;
  for (int64_t d : t.shape) {
    if (d < 0) {
      return invalid_argument("{}: tensor '{}' has a negative dimension in shape {}", path.string(),
                              t.name, shape_to_string(t.shape));
    }
    overflow |= __builtin_mul_overflow(numel, uint64_t(d), &numel);
  }
  uint64_t bytes = 0;
  overflow |= numel > uint64_t(std::numeric_limits<int64_t>::max());
  overflow |= __builtin_mul_overflow(numel, uint64_t(dtype_size(t.dtype)), &bytes);
  if (overflow) {
    return invalid_argument("{}: tensor '{}' of shape {} is too large", path.string(), t.name,
                            shape_to_string(t.shape));
  }
  if (numel > 0 && !t.fill) {
    return invalid_argument("{}: tensor '{}' has {} elements but no fill function", path.string(),
                            t.name, numel);
  }
  return bytes;
}

// Total bytes of all tensors, validating every one before anything is written.
StatusOr<std::vector<uint64_t>> all_tensor_bytes(const fs::path& path,
                                                 const std::vector<TensorToWrite>& tensors) {
  std::vector<uint64_t> bytes;
  bytes.reserve(tensors.size());
  std::set<std::string_view> names;
  for (const TensorToWrite& t : tensors) {
    if (t.name == "__metadata__") {
      return invalid_argument("{}: '__metadata__' is reserved and cannot name a tensor",
                              path.string());
    }
    if (!names.insert(t.name).second) {
      return invalid_argument("{}: tensor '{}' is given twice", path.string(), t.name);
    }
    MEGALITH_ASSIGN_OR_RETURN(uint64_t b, tensor_bytes(path, t));
    bytes.push_back(b);
  }
  return bytes;
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

Status write_bytes(FILE* f, const fs::path& path, const void* data, size_t n) {
  if (n > 0 && std::fwrite(data, 1, n, f) != n) {
    return io_error("{}: write failed: {}", path.string(), errno_message(errno));
  }
  return {};
}

Status write_tensor_data(FILE* f, const fs::path& path, const TensorToWrite& t) {
  const int64_t numel = shape_numel(t.shape);
  const size_t elem = dtype_size(t.dtype);
  // unique_ptr<std::byte[]> from new is aligned for any scalar type fill() may store.
  std::unique_ptr<std::byte[]> buffer(
      new std::byte[size_t(std::min(numel, kChunkElements)) * elem]);
  for (int64_t first = 0; first < numel; first += kChunkElements) {
    const int64_t count = std::min(kChunkElements, numel - first);
    t.fill(first, count, buffer.get());
    MEGALITH_RETURN_IF_ERROR(write_bytes(f, path, buffer.get(), size_t(count) * elem));
  }
  return {};
}

Status write_text_file(const fs::path& path, const std::string& text) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  if (!f) return io_error("{}: cannot create: {}", path.string(), errno_message(errno));
  MEGALITH_RETURN_IF_ERROR(write_bytes(f.get(), path, text.data(), text.size()));
  if (std::fclose(f.release()) != 0) {
    return io_error("{}: write failed: {}", path.string(), errno_message(errno));
  }
  return {};
}

std::string shard_name(size_t k, size_t n) {
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", k, n);
}

// Weight files an earlier save may have left: with them, TensorStore could load stale weights
// (it prefers model.safetensors) or an index could point at old shards.
bool is_weight_file_name(const std::string& name) {
  static const std::regex kShard(R"(model-\d{5}-of-\d{5}\.safetensors)");
  return name == "model.safetensors" || name == "model.safetensors.index.json" ||
         std::regex_match(name, kShard);
}

Status remove_stale_weight_files(const fs::path& dir, const std::set<std::string>& written) {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!is_weight_file_name(name) || written.count(name) > 0) continue;
    if (!fs::remove(entry.path(), ec) && ec) {
      return io_error("{}: cannot remove stale weight file: {}", entry.path().string(),
                      ec.message());
    }
  }
  if (ec) return io_error("{}: cannot list: {}", dir.string(), ec.message());
  return {};
}

}  // namespace

Status write_safetensors(const fs::path& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  MEGALITH_ASSIGN_OR_RETURN(const std::vector<uint64_t> bytes, all_tensor_bytes(path, tensors));

  // ordered_json keeps "__metadata__" first and the tensors in file order, as a reader of the
  // header expects to see them.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorToWrite& t = tensors[i];
    uint64_t end = 0;
    if (__builtin_add_overflow(offset, bytes[i], &end)) {
      return invalid_argument("{}: tensors total more than 2^64 bytes", path.string());
    }
    header[t.name] = {{"dtype", dtype_safetensors_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", nlohmann::ordered_json::array({offset, end})}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata that is not UTF-8
    return invalid_argument("{}: cannot encode the header: {}", path.string(), e.what());
  }
  // Padding to 8 bytes keeps the data section aligned for readers that cast in place.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  if (!f) return io_error("{}: cannot create: {}", path.string(), errno_message(errno));
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
  MEGALITH_RETURN_IF_ERROR(write_bytes(f.get(), path, len, sizeof(len)));
  MEGALITH_RETURN_IF_ERROR(write_bytes(f.get(), path, text.data(), text.size()));
  for (const TensorToWrite& t : tensors) {
    MEGALITH_RETURN_IF_ERROR(write_tensor_data(f.get(), path, t));
  }
  // Buffered writes fail late: a full disk often shows up only here.
  if (std::fclose(f.release()) != 0) {
    return io_error("{}: write failed: {}", path.string(), errno_message(errno));
  }
  return {};
}

Status write_checkpoint_tensors(const fs::path& dir, const std::vector<TensorToWrite>& tensors,
                                uint64_t max_shard_bytes) {
  MEGALITH_ASSIGN_OR_RETURN(const std::vector<uint64_t> bytes,
                            all_tensor_bytes(dir / "model.safetensors", tensors));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return io_error("{}: cannot create directory: {}", dir.string(), ec.message());
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};

  uint64_t total = 0;
  for (uint64_t b : bytes) {
    if (__builtin_add_overflow(total, b, &total)) {
      return invalid_argument("{}: tensors total more than 2^64 bytes", dir.string());
    }
  }
  if (total <= max_shard_bytes) {
    MEGALITH_RETURN_IF_ERROR(write_safetensors(dir / "model.safetensors", tensors, metadata));
    return remove_stale_weight_files(dir, {"model.safetensors"});
  }

  // Greedy in order, as transformers does: a shard closes when the next tensor would overflow it.
  std::vector<std::vector<TensorToWrite>> shards;
  uint64_t shard_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (shards.empty() || (shard_bytes > 0 && shard_bytes + bytes[i] > max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(tensors[i]);
    shard_bytes += bytes[i];
  }

  nlohmann::json weight_map = nlohmann::json::object();  // std::map inside: sorted, as HF writes
  std::set<std::string> written;
  for (size_t k = 0; k < shards.size(); ++k) {
    const std::string name = shard_name(k + 1, shards.size());
    MEGALITH_RETURN_IF_ERROR(write_safetensors(dir / name, shards[k], metadata));
    for (const TensorToWrite& t : shards[k]) weight_map[t.name] = name;
    written.insert(name);
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  MEGALITH_RETURN_IF_ERROR(
      write_text_file(dir / "model.safetensors.index.json", index.dump(2) + "\n"));
  written.insert("model.safetensors.index.json");
  return remove_stale_weight_files(dir, written);
}

}  // namespace megalith
