#include "models/checkpoint.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"

namespace portrait {

namespace fs = std::filesystem;

ModelBundle ModelBundle::create(const ModelConfig& cfg, double init_temperature, bool learn_temperature) {
  ModelBundle m;
  m.cfg = cfg;
  m.encoder = UserEncoder(cfg);
  m.head = PurchaseHead(cfg.embed_dim, cfg.head_hidden, cfg.n_targets, cfg.head_activation);
  m.temperature = LearnedTemperature(init_temperature, learn_temperature);
  return m;
}

std::vector<torch::Tensor> ModelBundle::parameters() const {
  std::vector<torch::Tensor> p = encoder->parameters();
  for (auto& t : head->parameters()) p.push_back(t);
  for (auto& t : temperature->parameters()) p.push_back(t);
  return p;
}

void ModelBundle::train(bool on) {
  encoder->train(on);
  head->train(on);
  temperature->train(on);
}

void ModelBundle::to(const torch::Device& d) {
  encoder->to(d);
  head->to(d);
  temperature->to(d);
}

nlohmann::json model_config_to_json(const ModelConfig& c) {
  return {{"n_items", c.n_items},           {"n_categories", c.n_categories},
          {"n_event_types", c.n_event_types}, {"n_gap_buckets", c.n_gap_buckets},
          {"n_price_buckets", c.n_price_buckets}, {"n_text_tokens", c.n_text_tokens},
          {"n_targets", c.n_targets},       {"d_model", c.d_model},
          {"n_layers", c.n_layers},         {"n_heads", c.n_heads},
          {"d_ff", c.d_ff},                 {"dropout", c.dropout},
          {"max_events", c.max_events},     {"max_text_tokens", c.max_text_tokens},
          {"embed_dim", c.embed_dim},       {"repeat_dim", c.repeat_dim},
          {"pooling", c.pooling},
          {"causal", c.causal},             {"head_hidden", c.head_hidden},
          {"head_activation", c.head_activation}};
}

ModelConfig model_config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  c.n_items = j.at("n_items");
  c.n_categories = j.at("n_categories");
  c.n_event_types = j.at("n_event_types");
  c.n_gap_buckets = j.at("n_gap_buckets");
  c.n_price_buckets = j.at("n_price_buckets");
  c.n_text_tokens = j.at("n_text_tokens");
  c.n_targets = j.at("n_targets");
  c.d_model = j.at("d_model");
  c.n_layers = j.at("n_layers");
  c.n_heads = j.at("n_heads");
  c.d_ff = j.at("d_ff");
  c.dropout = j.at("dropout");
  c.max_events = j.at("max_events");
  c.max_text_tokens = j.at("max_text_tokens");
  c.embed_dim = j.at("embed_dim");
  c.repeat_dim = j.value("repeat_dim", int64_t{0});  // absent in models saved before the repeat channel
  c.pooling = j.at("pooling");
  c.causal = j.at("causal");
  c.head_hidden = j.at("head_hidden");
  c.head_activation = j.at("head_activation");
  c.validate();
  return c;
}

void save_model_weights(const ModelBundle& m, torch::serialize::OutputArchive& ar) {
  torch::serialize::OutputArchive enc, head, temp;
  m.encoder->save(enc);
  m.head->save(head);
  m.temperature->save(temp);
  ar.write("encoder", enc);
  ar.write("head", head);
  ar.write("temperature", temp);
}

void load_model_weights(ModelBundle& m, torch::serialize::InputArchive& ar) {
  torch::serialize::InputArchive enc, head, temp;
  ar.read("encoder", enc);
  ar.read("head", head);
  ar.read("temperature", temp);
  m.encoder->load(enc);
  m.head->load(head);
  m.temperature->load(temp);
}

nlohmann::json checksum_files(const fs::path& dir, const std::vector<std::string>& names) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& n : names) j[n] = sha256_file(dir / n);
  return j;
}

void verify_checksums(const fs::path& dir, const nlohmann::json& sums, const fs::path& recorded_in) {
  if (!sums.is_object()) throw DataError(recorded_in.string() + ": 'checksums' is not an object (corrupt file)");
  for (const auto& [name, want] : sums.items()) {
    const fs::path f = dir / name;
    if (!fs::exists(f)) throw DataError(f.string() + " is missing (listed in " + recorded_in.string() + ")");
    if (!want.is_string() || sha256_file(f) != want.get<std::string>())
      throw DataError(f.string() + " does not match the sha256 recorded in " + recorded_in.string() +
                      ": the file is corrupt (a flipped bit, a partial copy) or was replaced.");
  }
}

void check_finite_weights(const ModelBundle& m, const std::string& source) {
  torch::NoGradGuard ng;
  auto check = [&](const std::string& where, const torch::OrderedDict<std::string, torch::Tensor>& d) {
    for (const auto& it : d)
      if (it.value().defined() && it.value().is_floating_point() && !torch::isfinite(it.value()).all().item<bool>())
        throw DataError(source + ": weight " + where + "." + it.key() +
                        " holds NaN or infinite values: the model is corrupt or diverged.");
  };
  check("encoder", m.encoder->named_parameters());
  check("encoder", m.encoder->named_buffers());
  check("head", m.head->named_parameters());
  check("temperature", m.temperature->named_parameters());
}

void save_archive(torch::serialize::OutputArchive& ar, const fs::path& path) {
  std::ostringstream os(std::ios::binary);
  ar.save_to(os);
  write_file_atomic(path, os.view());
}

void save_model(const ModelBundle& m, const fs::path& dir) {
  AtomicDir out(dir);  // removed again if anything below throws (a full disk)
  {
    torch::serialize::OutputArchive ar;
    save_model_weights(m, ar);
    save_archive(ar, out.temp_path() / "model.pt");
  }
  nlohmann::json j = m.meta;
  j["format"] = kModelFormat;
  j["format_version"] = kModelFormatVersion;
  j["config"] = model_config_to_json(m.cfg);
  j["checksums"] = checksum_files(out.temp_path(), {"model.pt"});
  write_file_atomic(out.temp_path() / "model.json", j.dump(2) + "\n");
  out.commit();
}

ModelBundle load_model(const fs::path& dir, const torch::Device& device) {
  fs::path meta_path = dir / "model.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(meta_path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(meta_path.string() + ": not valid JSON: " + e.what());
  }
  if (j.value("format", "") != kModelFormat) {
    throw std::runtime_error(meta_path.string() + ": not a Portrait model (format '" +
                             j.value("format", "") + "', expected '" + kModelFormat + "')");
  }
  if (j.value("format_version", 0) != kModelFormatVersion) {
    throw std::runtime_error(meta_path.string() + ": unsupported format_version " +
                             std::to_string(j.value("format_version", 0)) + " (this build reads " +
                             std::to_string(kModelFormatVersion) + ")");
  }
  // Models written before checksums were recorded load without that check.
  if (j.contains("checksums")) verify_checksums(dir, j["checksums"], meta_path);
  ModelBundle m = ModelBundle::create(model_config_from_json(j.at("config")));
  m.meta = j;
  try {
    torch::serialize::InputArchive ar;
    ar.load_from((dir / "model.pt").string());
    load_model_weights(m, ar);
  } catch (const c10::Error& e) {
    throw DataError((dir / "model.pt").string() + ": cannot be read as a Portrait model (" +
                    std::string(e.what_without_backtrace()).substr(0, 300) + ")");
  }
  check_finite_weights(m, (dir / "model.pt").string());
  m.to(device);
  m.train(false);
  return m;
}

}  // namespace portrait
