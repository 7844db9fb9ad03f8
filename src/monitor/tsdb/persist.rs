//! Flushing (cut chunks to the active segment, then the checkpoint of open chunks) and
//! maintenance (sealing idle chunks, closing an old segment, retention).

use std::fs::{self, File};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::checkpoint::{self, HeadSnapshot};
use super::chunk::SealedChunk;
use super::head::SegRef;
use super::index::SeriesId;
use super::labels::SeriesLabels;
use super::segment::{BatchItem, SegmentSummary, SegmentWriter, segment_path};
use super::{Db, DbError, Inner, MaintainSummary, SegmentMeta, WriterState, io_err, millis};

/// One series' cut chunks as taken for a flush.
struct FlushItem {
    id: SeriesId,
    labels: SeriesLabels,
    chunks: Vec<Arc<SealedChunk>>,
}

impl Inner {
    /// Copies what a flush writes: the cut chunks (shared) and the open chunks (copied).
    fn flush_snapshot(&self) -> (Vec<FlushItem>, Vec<HeadSnapshot>) {
        let mut items = Vec::new();
        let mut heads = Vec::with_capacity(self.head.len());
        for (id, series) in self.head.iter() {
            if !series.unflushed.is_empty() {
                let chunks = series.unflushed.clone();
                items.push(FlushItem {
                    id,
                    labels: series.labels.clone(),
                    chunks,
                });
            }
            if let Some(h) = &series.head {
                heads.push(HeadSnapshot {
                    labels: series.labels.clone(),
                    chunk: SealedChunk {
                        bytes: h.bytes().into(),
                        mint: h.mint(),
                        maxt: h.maxt(),
                        count: h.count(),
                    },
                });
            }
        }
        (items, heads)
    }
}

impl Db {
    /// Makes everything appended so far durable: writes and fsyncs the cut chunks to the
    /// active segment, then replaces the checkpoint of open chunks (skipped when nothing
    /// changed since the last one). On error nothing is lost from memory; the next flush
    /// tries again.
    pub fn flush(&self) -> Result<(), DbError> {
        let mut w = self.lock_writer();
        let generation = self.counters.generation.load(Ordering::Relaxed);
        let (items, heads) = self.read_inner().flush_snapshot();
        if !items.is_empty() {
            self.write_chunks(&mut w, &items)?;
        }
        if w.checkpointed == Some(generation) {
            return Ok(());
        }
        let dir = &self.opts.dir;
        let size = checkpoint::write(dir, &heads)
            .map_err(io_err("write checkpoint", checkpoint::path(dir)))?;
        self.counters
            .checkpoint_bytes
            .store(size, Ordering::Relaxed);
        w.checkpointed = Some(generation);
        Ok(())
    }

    fn write_chunks(&self, w: &mut WriterState, items: &[FlushItem]) -> Result<(), DbError> {
        let all = || items.iter().flat_map(|i| i.chunks.iter());
        let mint = all().map(|c| c.mint).min().unwrap_or_default();
        let maxt = all().map(|c| c.maxt).max().unwrap_or_default();
        if let Some((_, active)) = &w.active {
            let too_long = active
                .mint()
                .is_some_and(|m| maxt.saturating_sub(m) > millis(self.opts.segment_span));
            if too_long || active.size() >= self.opts.segment_bytes {
                self.close_active(w)?;
            }
        }
        if w.active.is_none() {
            self.start_segment(w, mint)?;
        }
        let Some((seg, writer)) = w.active.as_mut() else {
            return Ok(());
        };
        let seg = *seg;
        let batch: Vec<BatchItem<'_>> = items
            .iter()
            .map(|i| BatchItem {
                id: i.id,
                labels: &i.labels,
                chunks: &i.chunks,
            })
            .collect();
        let offsets = match writer.write_batch(&batch) {
            Ok(offsets) => offsets,
            Err(e) => {
                // The file keeps what earlier batches wrote; later batches go to a new one.
                w.active = None;
                return Err(io_err("write segment", segment_path(&self.opts.dir, seg))(
                    e,
                ));
            }
        };
        self.publish(seg, items, &offsets, writer.summary());
        Ok(())
    }

    /// Moves written chunks from memory to the index of segment `seg`.
    fn publish(&self, seg: u32, items: &[FlushItem], offsets: &[u32], summary: &SegmentSummary) {
        let mut inner = self.write_inner();
        for (item, &last_off) in items.iter().zip(offsets) {
            let Some(series) = inner.head.get_mut(item.id) else {
                continue;
            };
            // Appends only push behind these, and only flush (serialised) removes them.
            let written = item.chunks.len().min(series.unflushed.len());
            series.unflushed.drain(..written);
            if series.unflushed.is_empty() {
                // Free the capacity too: it is needed again only every 120 samples.
                series.unflushed = Vec::new();
            }
            match series.on_disk.last_mut() {
                Some(r) if r.segment == seg => r.last_off = last_off,
                _ => series.on_disk.push(SegRef {
                    segment: seg,
                    last_off,
                    disk_id: item.id,
                }),
            }
        }
        if let Some(meta) = inner.segments.get_mut(&seg) {
            update_meta(meta, summary);
        }
    }

    fn start_segment(&self, w: &mut WriterState, base_t: i64) -> Result<(), DbError> {
        let id = w.next_segment;
        let path = segment_path(&self.opts.dir, id);
        let (writer, reader) = SegmentWriter::create(&self.opts.dir, id, base_t)
            .map_err(io_err("create segment", &path))?;
        w.next_segment = id.saturating_add(1);
        let meta = SegmentMeta {
            reader: Arc::new(reader),
            base_t,
            mint: i64::MAX,
            maxt: i64::MIN,
            bytes: writer.size(),
            samples: 0,
            chunks: 0,
        };
        self.write_inner().segments.insert(id, meta);
        w.active = Some((id, writer));
        Ok(())
    }

    /// Writes the active segment's footer; the next flush starts a new segment.
    fn close_active(&self, w: &mut WriterState) -> Result<(), DbError> {
        let Some((id, writer)) = w.active.take() else {
            return Ok(());
        };
        let summary = writer
            .finish()
            .map_err(io_err("close segment", segment_path(&self.opts.dir, id)))?;
        if let Some(meta) = self.write_inner().segments.get_mut(&id) {
            update_meta(meta, &summary);
        }
        Ok(())
    }

    /// Seals the open chunks of series idle for `chunk_span`, closes the active segment once
    /// it spans `segment_span` up to `now_ms`, then applies retention (see the module docs)
    /// and drops series left without samples. Call it every minute or so.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintainSummary, DbError> {
        let mut w = self.lock_writer();
        let mut out = MaintainSummary::default();
        let idle_before = now_ms.saturating_sub(self.limits.span_ms);
        out.idle_chunks_sealed = self.write_inner().head.seal_idle(idle_before);
        if out.idle_chunks_sealed > 0 {
            self.counters.generation.fetch_add(1, Ordering::Relaxed);
        }
        let span = millis(self.opts.segment_span);
        let active_mint = w.active.as_ref().and_then(|(_, a)| a.mint());
        if active_mint.is_some_and(|m| now_ms.saturating_sub(m) > span) {
            self.close_active(&mut w)?;
        }
        let active = w.active.as_ref().map(|(id, _)| *id);
        let victims = self.pick_victims(active, now_ms);
        if victims.is_empty() {
            return Ok(out);
        }
        self.forget_segments(&victims, &mut out);
        drop(w);
        let dir = &self.opts.dir;
        for id in victims {
            let path = segment_path(dir, id);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("delete segment", path)(e));
                }
                _ => {}
            }
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync", dir))?;
        Ok(out)
    }

    /// Segments to delete, oldest first: too old, or needed to get under the size limit.
    fn pick_victims(&self, active: Option<u32>, now_ms: i64) -> Vec<u32> {
        let inner = self.read_inner();
        let cutoff = now_ms.saturating_sub(millis(self.opts.retention));
        let limit = self.opts.retention_bytes;
        let checkpoint_bytes = self.counters.checkpoint_bytes.load(Ordering::Relaxed);
        let mut total = inner.segments.values().map(|m| m.bytes).sum::<u64>() + checkpoint_bytes;
        let mut victims = Vec::new();
        for (&id, meta) in &inner.segments {
            if Some(id) == active {
                continue;
            }
            let over = limit > 0 && total > limit;
            if meta.maxt < cutoff || over {
                victims.push(id);
                total = total.saturating_sub(meta.bytes);
            }
        }
        victims
    }

    /// Removes segments from the index and drops series left empty.
    fn forget_segments(&self, victims: &[u32], out: &mut MaintainSummary) {
        let mut inner = self.write_inner();
        let Inner { head, segments } = &mut *inner;
        for id in victims {
            if let Some(meta) = segments.remove(id) {
                out.segments_deleted += 1;
                out.bytes_deleted += meta.bytes;
            }
        }
        for series in head.series_mut() {
            let before = series.on_disk.len();
            series.on_disk.retain(|r| !victims.contains(&r.segment));
            if series.on_disk.len() == before {
                continue;
            }
            // The oldest sample left is no older than its container.
            let floor = series
                .on_disk
                .first()
                .and_then(|r| segments.get(&r.segment))
                .map(|m| m.mint)
                .or_else(|| series.unflushed.first().map(|c| c.mint))
                .or_else(|| series.head.as_ref().map(|h| h.mint()));
            if let Some(floor) = floor {
                series.first_t = series.first_t.max(floor);
            }
        }
        out.series_dropped = head.drop_empty();
    }
}

fn update_meta(meta: &mut SegmentMeta, summary: &SegmentSummary) {
    if summary.chunks > 0 {
        meta.mint = summary.mint;
        meta.maxt = summary.maxt;
    }
    meta.bytes = summary.bytes;
    meta.samples = summary.samples;
    meta.chunks = summary.chunks;
}
