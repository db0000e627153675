//! Criterion measurement in thread CPU time (CLOCK_THREAD_CPUTIME_ID) instead of wall
//! time, so that figures taken on a shared, loaded machine count only the cycles the
//! benchmark itself ran (cache and memory-bandwidth contention still show).

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

pub struct ThreadCpu;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = cpu_time::ThreadTime;
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        cpu_time::ThreadTime::now()
    }
    fn end(&self, i: Self::Intermediate) -> Self::Value {
        i.elapsed()
    }
    fn add(&self, v1: &Self::Value, v2: &Self::Value) -> Self::Value {
        *v1 + *v2
    }
    fn zero(&self) -> Self::Value {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Self::Value) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}
