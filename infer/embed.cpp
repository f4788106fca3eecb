// `portrait embed`: see embed.h. The only inference file that includes torch.
#include "infer/embed.h"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/loader.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "infer/h5.h"
#include "kernels/device.h"
#include "models/memory_budget.h"
#include "models/batch.h"
#include "models/checkpoint.h"

namespace portrait::infer {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// One batch of finished rows on its way to the writer thread.
struct Chunk {
  int64_t part = 0, part_row0 = 0, part_rows = 0;  // the part: global first row, rows
  int64_t row = 0;                                 // first row of this chunk within the part
  int64_t rows = 0;
  std::vector<float> emb;                          // [rows, D]
  std::vector<std::string> ids;
};

/// Writes part files from a bounded queue on its own thread.
class PartWriter {
 public:
  PartWriter(std::filesystem::path dir, int64_t dim, size_t id_width, std::string run_key,
             h5::FloatStorage st, size_t depth)
      : dir_(std::move(dir)), dim_(dim), id_width_(id_width), run_key_(std::move(run_key)),
        st_(st), depth_(std::max<size_t>(1, depth)), thread_([this] { loop(); }) {}
  ~PartWriter() {
    try {
      close();
    } catch (...) {
    }
  }

  /// Blocks while the queue is full; returns the seconds spent blocked.
  double push(Chunk c) {
    auto t0 = Clock::now();
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return q_.size() < depth_ || error_; });
    if (error_) std::rethrow_exception(error_);
    q_.push_back(std::move(c));
    cv_.notify_all();
    return seconds_since(t0);
  }
  /// Drains the queue, joins the thread and rethrows a writer error.
  void close() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
    if (error_) std::rethrow_exception(error_);
  }
  double write_seconds() const { return write_s_; }
  int64_t parts_finished() const { return finished_; }

 private:
  void loop() {
    while (true) {
      Chunk c;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return !q_.empty() || done_; });
        if (q_.empty()) return;
        c = std::move(q_.front());
        q_.pop_front();
        cv_.notify_all();
      }
      try {
        auto t0 = Clock::now();
        write(c);
        write_s_ += seconds_since(t0);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        error_ = std::current_exception();
        q_.clear();
        cv_.notify_all();
        return;
      }
    }
  }

  void write(const Chunk& c) {
    if (c.row == 0) {  // first chunk of a part: open its temporary file
      out_.emplace(dir_ / fmt::format("part-{:05d}.h5", c.part));
      file_ = h5::create_file(out_->temp_path());
      emb_ = h5::create_float(file_, "embedding", {hsize_t(c.part_rows), hsize_t(dim_)}, st_);
      h5::H t = h5::fixed_string_type(id_width_);
      h5::H space(H5Screate_simple(1, std::vector<hsize_t>{hsize_t(c.part_rows)}.data(), nullptr),
                  H5Sclose);
      ids_ = h5::H(H5Dcreate2(file_, "user_id", t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                   H5Dclose);
      h5::check(ids_.get(), "create part user_id");
    }
    h5::write_rows(emb_, H5T_NATIVE_FLOAT, hsize_t(c.row), hsize_t(c.rows), c.emb.data());
    std::string buf(size_t(c.rows) * id_width_, '\0');
    for (size_t i = 0; i < c.ids.size(); ++i)
      std::memcpy(buf.data() + i * id_width_, c.ids[i].data(), std::min(id_width_, c.ids[i].size()));
    h5::H t = h5::fixed_string_type(id_width_);
    h5::write_rows(ids_, t, hsize_t(c.row), hsize_t(c.rows), buf.data());
    if (c.row + c.rows == c.part_rows) {  // last chunk: attributes, close, rename
      h5::set_attr(file_, "run_key", run_key_);
      h5::set_attr(file_, "part", c.part);
      h5::set_attr(file_, "row0", c.part_row0);
      h5::set_attr(file_, "rows", c.part_rows);
      h5::set_attr(file_, "complete", int64_t{1});
      emb_.reset();
      ids_.reset();
      h5::close_file(file_, out_->temp_path());
      out_->commit();
      out_.reset();
      ++finished_;
    }
  }

  std::filesystem::path dir_;
  int64_t dim_;
  size_t id_width_;
  std::string run_key_;
  h5::FloatStorage st_;
  size_t depth_;
  std::deque<Chunk> q_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::exception_ptr error_;
  std::optional<AtomicOutput> out_;
  h5::H file_, emb_, ids_;
  double write_s_ = 0;
  int64_t finished_ = 0;
  std::thread thread_;  // last: starts after every member above is initialised
};

std::filesystem::path part_path(const std::filesystem::path& dir, int64_t p) {
  return dir / fmt::format("part-{:05d}.h5", p);
}

/// A part file finished by a run with the same key (resume).
bool part_done(const std::filesystem::path& f, const std::string& run_key, int64_t rows) {
  if (!h5::is_hdf5(f)) return false;
  try {
    h5::H file = h5::open_file(f);
    return h5::has_attr(file, "complete") && h5::attr_i64(file, "complete") == 1 &&
           h5::attr_str(file, "run_key") == run_key && h5::attr_i64(file, "rows") == rows;
  } catch (const std::exception&) {
    return false;
  }
}

/// /embedding and /user_id of the output as virtual datasets over the parts.
void stitch_vds(hid_t out, const std::string& rel_dir, int64_t n, int64_t dim, int64_t part_users,
                int64_t n_parts, bool f16, size_t id_width) {
  struct Target {
    const char* name;
    hid_t type;
    int rank;
  };
  h5::H idt = h5::fixed_string_type(id_width);
  const Target targets[] = {{"embedding", f16 ? h5::float16_type() : H5T_IEEE_F32LE, 2},
                            {"user_id", idt.get(), 1}};
  for (const auto& t : targets) {
    hsize_t vdims[2] = {hsize_t(n), hsize_t(dim)};
    h5::H vspace(H5Screate_simple(t.rank, vdims, nullptr), H5Sclose);
    h5::H dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    for (int64_t p = 0; p < n_parts; ++p) {
      int64_t r0 = p * part_users, rows = std::min(part_users, n - r0);
      hsize_t sdims[2] = {hsize_t(rows), hsize_t(dim)};
      h5::H sspace(H5Screate_simple(t.rank, sdims, nullptr), H5Sclose);
      hsize_t start[2] = {hsize_t(r0), 0}, count[2] = {hsize_t(rows), hsize_t(dim)};
      h5::check(H5Sselect_hyperslab(vspace, H5S_SELECT_SET, start, nullptr, count, nullptr), "vds");
      std::string src = rel_dir + "/" + fmt::format("part-{:05d}.h5", p);
      h5::check(H5Pset_virtual(dcpl, vspace, src.c_str(), t.name, sspace), "H5Pset_virtual");
    }
    h5::H space(H5Screate_simple(t.rank, vdims, nullptr), H5Sclose);
    h5::H ds(H5Dcreate2(out, t.name, t.type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose);
    h5::check(ds.get(), std::string("create virtual dataset ") + t.name);
  }
}

/// /embedding and /user_id copied from the parts into contiguous chunked datasets.
void stitch_copy(hid_t out, const std::filesystem::path& dir, int64_t n, int64_t dim,
                 int64_t n_parts, const h5::FloatStorage& st, size_t id_width) {
  h5::H emb = h5::create_float(out, "embedding", {hsize_t(n), hsize_t(dim)}, st);
  h5::H t = h5::fixed_string_type(id_width);
  hsize_t nd = hsize_t(n);
  h5::H space(H5Screate_simple(1, &nd, nullptr), H5Sclose);
  h5::H ids(H5Dcreate2(out, "user_id", t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  h5::check(ids.get(), "create user_id");
  for (int64_t p = 0; p < n_parts; ++p) {
    h5::H f = h5::open_file(part_path(dir, p));
    int64_t r0 = h5::attr_i64(f, "row0"), rows = h5::attr_i64(f, "rows");
    // Copy the on-disk representation (f16 stays f16 bit for bit).
    h5::H pds(H5Dopen2(f, "embedding", H5P_DEFAULT), H5Dclose);
    h5::H ftype(H5Dget_type(pds), H5Tclose);
    std::vector<char> buf(size_t(rows * dim) * H5Tget_size(ftype));
    h5::check(H5Dread(pds, ftype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "read part");
    h5::write_rows(emb, ftype, hsize_t(r0), hsize_t(rows), buf.data());
    std::string sbuf(size_t(rows) * id_width, '\0');
    h5::H pids(H5Dopen2(f, "user_id", H5P_DEFAULT), H5Dclose);
    h5::check(H5Dread(pids, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, sbuf.data()), "read part ids");
    h5::write_rows(ids, t, hsize_t(r0), hsize_t(rows), sbuf.data());
  }
}

torch::Device pick_device(const std::string& d) {
  if (d == "cpu") return torch::kCPU;
  if (d == "cuda") {
    if (cuda_device_count() == 0 || !torch::cuda::is_available())
      throw std::runtime_error("embed.device=cuda but no CUDA device is available");
    return torch::kCUDA;
  }
  return (cuda_device_count() > 0 && torch::cuda::is_available()) ? torch::Device(torch::kCUDA)
                                                                  : torch::Device(torch::kCPU);
}

}  // namespace

EmbedParams embed_params_from_config(const cfg::Node& root) {
  EmbedParams p;
  cfg::Section s(root, "embed");
  s.read("model", p.model_dir);
  s.read("shards", p.shards);
  s.read("output", p.output);
  s.read_enum("split", p.split, {"latest", "train", "val", "test"});
  s.read("batch_size", p.batch_size, 1, 1 << 20);
  s.read_enum("dtype", p.dtype, {"float32", "float16"});
  s.read("gzip", p.gzip, 0, 9);
  s.read("chunk_bytes", p.chunk_bytes, int64_t{0}, int64_t{1} << 30);
  s.read("part_users", p.part_users, int64_t{1});
  s.read_enum("stitch", p.stitch, {"vds", "consolidate"});
  s.read("export_items", p.export_items);
  s.read("export_head", p.export_head);
  s.read("queue_depth", p.queue_depth, 1, 1024);
  s.read("threads", p.threads, 0, 1024);
  s.read_enum("device", p.device, {"auto", "cpu", "cuda"});
  s.read_enum("precision", p.precision, {"auto", "fp32", "bf16"});
  s.read("progress", p.progress);
  s.finish();
  return p;
}

EmbedSummary run_embed(const EmbedParams& p) {
  const auto t_start = Clock::now();
  if (p.model_dir.empty()) throw ConfigError("embed.model: the model directory is mandatory");
  if (p.shards.empty()) throw ConfigError("embed.shards: the shard directory is mandatory");
  if (p.output.empty()) throw ConfigError("embed.output: the output file is mandatory");
  if (p.world < 1 || p.rank < 0 || p.rank >= p.world)
    throw std::invalid_argument(fmt::format("embed: bad rank {} / world {}", p.rank, p.world));
  if (p.world > 1 && !p.barrier)
    throw std::invalid_argument("embed: world > 1 needs a barrier function");
  if (p.threads > 0) torch::set_num_threads(p.threads);

  const torch::Device device = pick_device(p.device);
  const bool bf16 = device.is_cuda() && p.precision != "fp32";
  if (!device.is_cuda() && p.precision == "bf16")
    PLOG_WARN("embed.precision=bf16 ignored on CPU (fp32)");

  {
    // Nothing of the model or the shards may be overwritten by the export or its parts.
    std::vector<NamedInput> inputs = {{"embed.model_dir", std::filesystem::path(p.model_dir) / "model.pt"},
                                      {"embed.model_dir", std::filesystem::path(p.model_dir) / "model.json"}};
    for (const auto& f : data::list_shards(p.shards)) inputs.push_back({"embed.shards", f});
    for (const char* name : {data::kManifestFile, "tokenizer.model", "tokenizer.model.sha256"})
      inputs.push_back({"embed.shards", std::filesystem::path(p.shards) / name});
    check_output_not_input(p.output, "embed.output", inputs);
    const std::filesystem::path parts = p.output + ".parts";
    for (const auto& in : inputs) {
      std::error_code ec;
      const auto rel = std::filesystem::relative(std::filesystem::weakly_canonical(in.path, ec),
                                                 std::filesystem::weakly_canonical(parts, ec), ec);
      if (!ec && !rel.empty() && rel.native().rfind("..", 0) != 0)
        throw ConfigError("embed.output '" + p.output + "': its parts folder " + parts.string() + " holds the input " +
                          in.key + " ('" + in.path.string() + "'). Choose another embed.output.");
    }
  }
  ModelBundle model = load_model(p.model_dir, device);
  model.train(false);
  const std::filesystem::path model_pt = std::filesystem::path(p.model_dir) / "model.pt";
  const std::string ckpt_sha = sha256_file(model_pt);
  const int64_t D = model.cfg.embed_dim;

  data::LoaderParams lp;
  lp.shard_dir = p.shards;
  lp.split = p.split;
  lp.batch_size = p.batch_size;
  lp.shuffle = false;
  lp.threads = 1;
  lp.prefetch = 1;
  lp.max_targets = 1;
  data::Loader loader(lp);
  {
    // Before the first batch is allocated: an absurd embed.batch_size fails here with its key.
    const int64_t rows = std::min<int64_t>(p.batch_size, std::max<int64_t>(loader.num_users(), 1));
    const int64_t avail = device.is_cuda() ? int64_t(cuda_free_memory_bytes(device.index())) : available_host_memory_bytes();
    check_memory_budget(estimate_infer_memory(model.cfg, rows), avail,
                        device.is_cuda() ? device.str() : "this machine's memory");
  }
  // The model's embedding tables are indexed by these shards' token ids: another prep's
  // vocabulary would embed every user with other items' vectors, silently.
  {
    const std::string model_fp = model.meta.value("vocab_fingerprint", std::string());
    if ((!model_fp.empty() && model_fp != loader.vocab_fingerprint()) || model.cfg.n_items != loader.num_items() ||
        model.cfg.n_categories != loader.num_categories())
      throw DataError("embed.shards '" + p.shards + "' are not the shards the model in " + p.model_dir +
                      " was trained on (vocabulary fingerprint " + loader.vocab_fingerprint().substr(0, 12) + " vs " +
                      (model_fp.empty() ? std::string("unrecorded") : model_fp.substr(0, 12)) + ", items " +
                      std::to_string(loader.num_items()) + " vs " + std::to_string(model.cfg.n_items) +
                      "). Embed with the prep output the model was trained on (model.json 'shards': " +
                      model.meta.value("shards", std::string("?")) + ").");
  }
  const int64_t N = loader.num_users();
  if (N == 0) throw DataError("embed: split '" + p.split + "' of " + p.shards + " has no users");
  size_t id_width = 1;
  for (int64_t g = 0; g < N; ++g) id_width = std::max(id_width, loader.user_id(g).size());

  const int64_t n_parts = (N + p.part_users - 1) / p.part_users;
  const std::filesystem::path out(p.output);
  const std::filesystem::path parts_dir = out.string() + ".parts";
  std::filesystem::create_directories(parts_dir);
  const std::string run_key = sha256_hex(fmt::format(
      "{}|{}|{}|{}|{}|{}|{}|{}", ckpt_sha, std::filesystem::absolute(p.shards).string(), p.split,
      N, p.part_users, p.dtype, D, id_width));
  h5::FloatStorage st{p.dtype == "float16", p.chunk_bytes, p.gzip};

  EmbedSummary sum;
  sum.users = N;
  sum.dim = D;
  sum.parts = n_parts;
  sum.output = out.string();

  // ---- this rank's parts -------------------------------------------------------------------
  std::vector<int64_t> todo;
  for (int64_t part = p.rank; part < n_parts; part += p.world) {
    int64_t rows = std::min(p.part_users, N - part * p.part_users);
    if (part_done(part_path(parts_dir, part), run_key, rows))
      ++sum.parts_skipped;
    else
      todo.push_back(part);
  }
  const bool truncated = p.max_parts >= 0 && int64_t(todo.size()) > p.max_parts;
  if (truncated) todo.resize(size_t(p.max_parts));
  int64_t todo_users = 0;
  for (auto part : todo) todo_users += std::min(p.part_users, N - part * p.part_users);

  {
    ProgressParams pp;
    pp.enabled = p.progress && p.rank == 0;
    Progress bar("embed", uint64_t(todo_users), "users", pp);
    PartWriter writer(parts_dir, D, id_width, run_key, st, size_t(p.queue_depth));
    c10::InferenceMode guard;

    // Batches in order over all todo parts; the next batch is built while this one runs.
    struct Job {
      int64_t part, row0, part_rows, row, rows;
    };
    std::vector<Job> jobs;
    for (auto part : todo) {
      int64_t r0 = part * p.part_users, rows = std::min(p.part_users, N - r0);
      for (int64_t r = 0; r < rows; r += p.batch_size)
        jobs.push_back({part, r0, rows, r, std::min<int64_t>(p.batch_size, rows - r)});
    }
    auto build = [&](const Job& j) {
      std::vector<int64_t> idx(size_t(j.rows));
      for (int64_t i = 0; i < j.rows; ++i) idx[size_t(i)] = j.row0 + j.row + i;
      return loader.make_batch(idx);
    };
    std::future<data::Batch> next;
    if (!jobs.empty()) next = std::async(std::launch::async, build, jobs[0]);
    for (size_t k = 0; k < jobs.size(); ++k) {
      auto t0 = Clock::now();
      data::Batch b = next.get();
      if (k + 1 < jobs.size()) next = std::async(std::launch::async, build, jobs[k + 1]);
      UserBatch ub = model_input(b, model.cfg, device);
      torch::Tensor user;
      if (bf16) {
        at::autocast::set_autocast_enabled(at::kCUDA, true);
        at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
        user = model.encoder->forward(ub).user;
        at::autocast::set_autocast_enabled(at::kCUDA, false);
        at::autocast::clear_cache();
      } else {
        user = model.encoder->forward(ub).user;
      }
      user = user.to(torch::kCPU, torch::kFloat).contiguous();
      if (!torch::isfinite(user).all().item<bool>()) {
        const int64_t bad = (~torch::isfinite(user)).any(1).sum().item<int64_t>();
        throw DataError(fmt::format("embed: the model in {} gives non-finite embeddings for {} of {} users "
                                    "(rows {}..{}); nothing of them was written. The model is corrupt or "
                                    "diverged: retrain, or use an earlier checkpoint's model.",
                                    p.model_dir, bad, jobs[k].rows, jobs[k].row0 + jobs[k].row,
                                    jobs[k].row0 + jobs[k].row + jobs[k].rows - 1));
      }
      Chunk c;
      const Job& j = jobs[k];
      c.part = j.part;
      c.part_row0 = j.row0;
      c.part_rows = j.part_rows;
      c.row = j.row;
      c.rows = j.rows;
      c.emb.assign(user.data_ptr<float>(), user.data_ptr<float>() + j.rows * D);
      c.ids.reserve(size_t(j.rows));
      for (int64_t i = 0; i < j.rows; ++i) c.ids.push_back(loader.user_id(j.row0 + j.row + i));
      sum.compute_s += seconds_since(t0);
      sum.write_wait_s += writer.push(std::move(c));
      bar.add(uint64_t(j.rows));
      sum.users_embedded += j.rows;
    }
    writer.close();
    sum.write_s = writer.write_seconds();
    sum.parts_written = writer.parts_finished();
    bar.finish();
  }

  if (truncated) {
    sum.wall_s = seconds_since(t_start);
    sum.users_per_s = sum.wall_s > 0 ? double(sum.users_embedded) / sum.wall_s : 0;
    sum.output.clear();
    PLOG_WARN("embed: stopped after {} part(s) (max_parts); rerun to resume", sum.parts_written);
    return sum;
  }

  // ---- barrier, then rank 0 stitches -------------------------------------------------------
  if (p.world > 1) p.barrier();
  if (p.rank == 0) {
    auto t0 = Clock::now();
    for (int64_t part = 0; part < n_parts; ++part) {
      int64_t rows = std::min(p.part_users, N - part * p.part_users);
      if (!part_done(part_path(parts_dir, part), run_key, rows))
        throw std::runtime_error(fmt::format("embed: part {} is missing or stale after the barrier",
                                             part_path(parts_dir, part).string()));
    }
    AtomicOutput ao(out);
    {
      h5::H f = h5::create_file(ao.temp_path());
      if (p.stitch == "vds")
        stitch_vds(f, parts_dir.filename().string(), N, D, p.part_users, n_parts, st.float16, id_width);
      else
        stitch_copy(f, parts_dir, N, D, n_parts, st, id_width);

      torch::NoGradGuard ng;
      auto vocab = data::read_shard(data::list_shards(p.shards).at(0), {}, true);
      if (p.export_items) {
        auto items = model.encoder->all_item_vectors().to(torch::kCPU, torch::kFloat).contiguous();
        h5::FloatStorage ist = st;
        h5::write_float(f, "item_embedding", items.data_ptr<float>(),
                        {hsize_t(items.size(0)), hsize_t(items.size(1))}, ist);
        std::vector<std::string> names = vocab.items;
        names.resize(size_t(items.size(0)));
        h5::write_vlen_strings(f, "item_id", names);
      }
      if (p.export_head && model.cfg.n_targets > 0 && model.head) {
        h5::H g = h5::create_group(f, "head");
        auto put = [&](const char* name, torch::Tensor t) {
          t = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
          std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
          h5::write_float(g, name, t.data_ptr<float>(), dims);
        };
        put("W1", model.head->fc1->weight);
        put("b1", model.head->fc1->bias);
        put("W2", model.head->fc2->weight);
        put("b2", model.head->fc2->bias);
        std::vector<std::string> targets = vocab.categories;
        targets.resize(size_t(model.cfg.n_targets));
        h5::write_vlen_strings(g, "target", targets);
        h5::set_attr(g, "activation", model.head->activation == "gelu" ? "gelu" : "relu");
        h5::set_attr(g, "hidden", model.cfg.head_hidden);
        h5::set_attr(g, "targets", model.cfg.n_targets);
        // The heads' calibration (train.calibration) travels with them: `portrait score` applies
        // it. A dataset, not an attribute: isotonic maps can outgrow HDF5's 64 KiB attributes.
        if (model.meta.contains("calibration") && model.meta["calibration"].is_object())
          h5::write_vlen_strings(g, "calibration", {model.meta["calibration"].dump()});
      }
      std::string tok_sha;
      if (model.meta.contains("tokenizer_sha256") && model.meta["tokenizer_sha256"].is_string())
        tok_sha = model.meta["tokenizer_sha256"].get<std::string>();
      else if (vocab.str_attrs.count("tokenizer_sha256"))
        tok_sha = vocab.str_attrs["tokenizer_sha256"];
      h5::set_attr(f, "format", kEmbeddingsFormat);
      h5::set_attr(f, "format_version", kEmbeddingsFormatVersion);
      h5::set_attr(f, "checkpoint_sha256", ckpt_sha);
      h5::set_attr(f, "model_dir", std::filesystem::absolute(p.model_dir).string());
      h5::set_attr(f, "shards", std::filesystem::absolute(p.shards).string());
      h5::set_attr(f, "tokenizer_sha256", tok_sha);
      h5::set_attr(f, "vocab_fingerprint", loader.vocab_fingerprint());
      h5::set_attr(f, "prep_run_id", loader.prep_run_id());
      h5::set_attr(f, "config_yaml", p.config_yaml);
      h5::set_attr(f, "dim", D);
      h5::set_attr(f, "num_users", N);
      h5::set_attr(f, "normalized", int64_t{1});
      h5::set_attr(f, "repeat_dim", model.cfg.repeat_dim);
      h5::set_attr(f, "dtype", p.dtype);
      h5::set_attr(f, "split", p.split);
      h5::set_attr(f, "world_size", int64_t(p.world));
      h5::set_attr(f, "parts", n_parts);
      h5::set_attr(f, "stitch", p.stitch);
      h5::set_attr(f, "created_utc", h5::utc_now());
      h5::set_attr(f, "torch_version", std::string(TORCH_VERSION));
      h5::set_attr(f, "complete", int64_t{1});
      h5::close_file(f, ao.temp_path());
    }
    ao.commit();
    if (p.stitch == "consolidate") {
      std::error_code ec;
      std::filesystem::remove_all(parts_dir, ec);
    }
    sum.stitched = true;
    sum.stitch_s = seconds_since(t0);
  } else {
    sum.output.clear();
  }
  sum.complete = true;
  sum.wall_s = seconds_since(t_start);
  sum.users_per_s = sum.wall_s > 0 ? double(sum.users_embedded) / sum.wall_s : 0;
  PLOG_INFO("embed: {} users x {} -> {} ({} parts written, {} resumed, {:.1f} users/s, "
            "HDF5 {:.2f}s of {:.2f}s)",
            N, D, p.output, sum.parts_written, sum.parts_skipped, sum.users_per_s, sum.write_s,
            sum.wall_s);
  return sum;
}

}  // namespace portrait::infer
