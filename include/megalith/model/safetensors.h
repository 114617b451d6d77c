// The safetensors format: read (memory-mapped, validated) and write (streamed).
//
//   MEGALITH_ASSIGN_OR_RETURN(auto store, TensorStore::open_dir("ckpt/"));
//   const SafetensorsEntry* e = store.find("model.embed_tokens.weight");
//   if (e && e->dtype) { TensorView v = e->view(); ... }
//
//   std::vector<TensorToWrite> ts = {{"w", DType::kBF16, {4, 8}, fill_fn}};
//   MEGALITH_RETURN_IF_ERROR(write_safetensors("out/model.safetensors", ts, {}));
//
// Layout (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
// N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data; offsets are relative to the end of the header. Every malformed or lying
// header is an error that names the file, never a crash.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/core/tensor.h"

namespace megalith {

struct SafetensorsEntry {
  std::string dtype_name;      // as written in the file: "BF16", "I64", ...
  std::optional<DType> dtype;  // set when megalith supports the dtype (F32, BF16, F16)
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets within the data section
  const void* data = nullptr;   // into the mapping; may be unaligned: copy, never cast and load

  uint64_t nbytes() const { return end - begin; }
  // Valid only when `dtype` is set.
  TensorView view() const { return {*dtype, shape, data}; }
};

// One memory-mapped .safetensors file. Not copyable; the views die with it. `open` accepts only
// files the spec allows: tensors tile the data section exactly (no overlap, no hole, no trailing
// bytes). Dtypes megalith does not compute in (I64, F8_E4M3, ...) are still entries, with
// `dtype` unset, so a loader can name the tensor and its dtype.
class SafetensorsFile {
 public:
  static StatusOr<std::unique_ptr<SafetensorsFile>> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(const std::string& name) const;
  // Everything after the header; every entry lies inside it, so all weights of a file can be
  // uploaded with one copy and addressed by `begin`.
  std::span<const std::byte> data_section() const { return data_section_; }

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  std::span<const std::byte> data_section_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: `model.safetensors`, or the shards named by
// `model.safetensors.index.json` (every listed shard must exist and hold what the index says).
class TensorStore {
 public:
  static StatusOr<TensorStore> open_dir(const std::filesystem::path& dir);

  const SafetensorsEntry* find(const std::string& name) const;
  // The file holding `name` (for error messages); empty when absent.
  std::filesystem::path file_of(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> owner_;
};

// A tensor to write; `fill` produces elements [first, first + count) into `out` (already typed
// as `dtype`, suitably aligned), so multi-gigabyte checkpoints are written in bounded memory.
// `fill` may be empty only for tensors without elements.
struct TensorToWrite {
  std::string name;
  DType dtype;
  Shape shape;
  std::function<void(int64_t first, int64_t count, void* out)> fill;
};

// Writes one file; tensors are laid out in the given order, header padded to 8 bytes.
// `metadata` becomes "__metadata__" when non-empty (transformers writes {"format": "pt"}).
Status write_safetensors(const std::filesystem::path& path,
                         const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata);

// Writes `dir/model.safetensors` when everything fits in `max_shard_bytes`, otherwise
// `model-0000K-of-0000N.safetensors` shards plus `model.safetensors.index.json`, as
// transformers' save_pretrained does: tensors are packed greedily in order, one larger than
// `max_shard_bytes` gets a shard of its own. Weight files of an earlier layout left in `dir`
// are removed, since TensorStore would otherwise prefer a stale model.safetensors.
Status write_checkpoint_tensors(const std::filesystem::path& dir,
                                const std::vector<TensorToWrite>& tensors,
                                uint64_t max_shard_bytes);

}  // namespace megalith
