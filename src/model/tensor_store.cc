// A checkpoint directory as one name -> tensor map. The index of a sharded checkpoint is checked
// against the shards both ways, so a stale or hand-edited index is an error, not a model that
// silently loads a tensor from the wrong file or misses one.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

#include "megalith/model/safetensors.h"

namespace megalith {

namespace fs = std::filesystem;

namespace {

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";
// Real indexes are a few hundred KB; this bounds what a corrupt one can make us allocate.
constexpr uintmax_t kMaxIndexBytes = 100'000'000;

StatusOr<std::string> read_index_text(const fs::path& index) {
  std::error_code ec;
  if (!fs::is_regular_file(index, ec)) {
    return invalid_argument("{}: is not a regular file", index.string());
  }
  const uintmax_t size = fs::file_size(index, ec);
  if (ec) return io_error("{}: cannot stat: {}", index.string(), ec.message());
  if (size > kMaxIndexBytes) {
    return data_loss("{}: {} bytes is too large for a shard index", index.string(), size);
  }
  std::ifstream in(index, std::ios::binary);
  if (!in) return io_error("{}: cannot open for reading", index.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return io_error("{}: read failed", index.string());
  return text.str();
}

// The index may only name files next to it: "../x", "/x" or "a/b" would read outside the
// checkpoint directory.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\\\0", 3)) == std::string::npos;
}

// weight_map of the index: tensor name -> shard file name, validated.
StatusOr<std::map<std::string, std::string>> parse_index(const fs::path& index) {
  MEGALITH_ASSIGN_OR_RETURN(const std::string text, read_index_text(index));
  const std::string file = index.string();
  // nlohmann's parser stops at a NUL and would accept whatever follows it.
  if (text.find('\0') != std::string::npos) {
    return data_loss("{}: not valid JSON (it contains a NUL byte)", file);
  }
  const nlohmann::json root = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return data_loss("{}: not valid JSON", file);
  if (!root.is_object()) return data_loss("{}: must be a JSON object", file);
  auto map_it = root.find("weight_map");
  if (map_it == root.end()) return data_loss("{}: missing \"weight_map\"", file);
  if (!map_it->is_object() || map_it->empty()) {
    return data_loss("{}: \"weight_map\" must be a non-empty object of tensor -> shard file", file);
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [tensor, shard] : map_it->items()) {
    if (!shard.is_string()) {
      return data_loss("{}: weight_map entry of '{}' must be a file name string", file, tensor);
    }
    std::string name = shard.get<std::string>();
    if (!is_plain_file_name(name)) {
      return data_loss(
          "{}: weight_map puts '{}' in '{}', which is not a plain file name in the "
          "checkpoint directory",
          file, tensor, name);
    }
    weight_map.emplace(tensor, std::move(name));
  }
  return weight_map;
}

}  // namespace

StatusOr<TensorStore> TensorStore::open_dir(const fs::path& dir) {
  std::error_code ec;
  const fs::file_status dir_status = fs::status(dir, ec);
  if (dir_status.type() == fs::file_type::not_found) {
    return not_found("{}: no such directory", dir.string());
  }
  if (ec) return io_error("{}: cannot stat: {}", dir.string(), ec.message());
  if (!fs::is_directory(dir_status)) {
    return invalid_argument("{}: is not a directory (expected a checkpoint directory)",
                            dir.string());
  }

  TensorStore store;
  const fs::path single = dir / kSingleFile;
  if (fs::exists(single, ec)) {
    MEGALITH_ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(single));
    for (const auto& [name, entry] : file->entries()) store.owner_.emplace(name, file.get());
    store.files_.push_back(std::move(file));
    return store;
  }

  const fs::path index = dir / kIndexFile;
  if (!fs::exists(index, ec)) {
    const bool has_bin = fs::exists(dir / "pytorch_model.bin", ec) ||
                         fs::exists(dir / "pytorch_model.bin.index.json", ec);
    return not_found(
        "{}: no {} or {} found{}", dir.string(), kSingleFile, kIndexFile,
        has_bin ? " (pytorch_model.bin is not supported: convert it to safetensors)" : "");
  }

  MEGALITH_ASSIGN_OR_RETURN(const auto weight_map, parse_index(index));
  const std::string index_name = index.string();
  // Each shard is opened once, in name order so errors are deterministic.
  std::map<std::string, const SafetensorsFile*> shards;
  for (const auto& [tensor, shard] : weight_map) shards.emplace(shard, nullptr);
  for (auto& [shard, opened] : shards) {
    auto file = SafetensorsFile::open(dir / shard);
    if (!file.ok()) return file.status().with_context(index_name + ": listed shard");
    opened = file->get();
    store.files_.push_back(std::move(file).value());
  }

  for (const auto& [tensor, shard] : weight_map) {
    const SafetensorsFile* file = shards.at(shard);
    if (file->find(tensor) == nullptr) {
      return data_loss("{}: lists tensor '{}' in {}, which does not hold it", index_name, tensor,
                       file->path().string());
    }
    store.owner_.emplace(tensor, file);
  }
  // The other direction: a shard tensor the index does not list is either a second copy of a
  // tensor (which one is meant?) or a sign that the index is stale.
  for (const auto& file : store.files_) {
    for (const auto& [tensor, entry] : file->entries()) {
      auto it = store.owner_.find(tensor);
      if (it == store.owner_.end()) {
        return data_loss("{}: holds tensor '{}', which {} does not list", file->path().string(),
                         tensor, index_name);
      }
      if (it->second != file.get()) {
        return data_loss("{}: tensor '{}' is in both {} and {}", index_name, tensor,
                         it->second->path().string(), file->path().string());
      }
    }
  }
  return store;
}

const SafetensorsEntry* TensorStore::find(const std::string& name) const {
  auto it = owner_.find(name);
  return it == owner_.end() ? nullptr : it->second->find(name);
}

fs::path TensorStore::file_of(const std::string& name) const {
  auto it = owner_.find(name);
  return it == owner_.end() ? fs::path() : it->second->path();
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> names;
  names.reserve(owner_.size());
  for (const auto& [name, file] : owner_) names.push_back(name);
  return names;
}

}  // namespace megalith
