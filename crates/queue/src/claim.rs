//! What a connection takes next, and how much it has left.

use rusqlite::{Connection, OptionalExtension, params};

use crate::shared::Shared;
use std::collections::BTreeSet;

use crate::state::{Origin, Position, lock};
use crate::{Claimed, Depth, EventId, QueueError, now_ms};

/// A row count or limit as SQLite wants it.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Due retries first, then events released earlier, then the next events of the source. The
/// reads run without holding the connection's state, so the writer settling this connection's
/// events never waits for them; the state is changed only once every read succeeded, so a
/// failed read leaves nothing stuck in flight.
pub(crate) fn claim(
    shared: &Shared,
    conn: &Connection,
    connection: &str,
    max: usize,
) -> Result<Vec<Claimed>, QueueError> {
    let fail = |what| move |source| QueueError::sqlite(&shared.path, what, source);
    let Some(state) = shared.states.get(connection) else {
        return Ok(Vec::new());
    };
    prime_order(shared, conn, connection, &state)?;
    let asked = max;
    let (source, claimed_through, released, retrying, ready, keep_reading) = {
        let state = lock(&state);
        if !state.active || max == 0 {
            return Ok(Vec::new());
        }
        let (ready, keep_reading) = state.order.as_ref().map_or((0, true), |(sequencer, _)| {
            (sequencer.ready_soon(), sequencer.kept() < MAX_KEPT)
        });
        let max = max.saturating_sub(ready);
        let retrying: BTreeSet<i64> = state
            .in_flight
            .iter()
            .filter(|(_, origin)| **origin == Origin::Retry)
            .map(|(id, _)| *id)
            .collect();
        (
            state.source.clone(),
            state.claimed_through,
            state
                .released
                .iter()
                .take(max)
                .copied()
                .collect::<Vec<i64>>(),
            retrying,
            ready,
            keep_reading,
        )
    };
    let max = max.saturating_sub(ready);
    let mut retries = due_retries(shared, conn, connection, &retrying, max)?;

    let (mut from_log, gone) = read_released(shared, conn, &released, max - retries.len())?;
    let wanted = max - retries.len() - from_log.len();
    let next: Vec<Claimed> = if wanted == 0 || !keep_reading {
        Vec::new()
    } else {
        // An event with a retry row was settled before a restart moved the cursor past it.
        conn.prepare_cached(
            "SELECT id, body, received_at FROM events AS e \
             WHERE source = ?1 AND id > ?2 AND NOT EXISTS \
             (SELECT 1 FROM retries AS r WHERE r.connection = ?3 AND r.event_id = e.id) \
             ORDER BY id LIMIT ?4",
        )
        .and_then(|mut s| {
            s.query_map(
                params![source, claimed_through, connection, limit(wanted)],
                |row| {
                    Ok(Claimed {
                        id: EventId(row.get(0)?),
                        body: row.get(1)?,
                        received_at_ms: row.get(2)?,
                        attempt: 0,
                    })
                },
            )?
            .collect()
        })
        .map_err(fail("reading the next events"))?
    };

    // Another claim may have run meanwhile (a connection normally has one claimer): keep only
    // what is still free to take.
    let mut state = lock(&state);
    retries.retain(|claimed| !state.in_flight.contains_key(&claimed.id.0));
    for claimed in &retries {
        state.in_flight.insert(claimed.id.0, Origin::Retry);
    }
    for id in gone {
        state.released.remove(&id);
    }
    from_log.retain(|claimed| state.released.remove(&claimed.id.0));
    for claimed in &from_log {
        state.in_flight.insert(claimed.id.0, Origin::Log);
    }
    let through = state.claimed_through;
    let next: Vec<Claimed> = next.into_iter().filter(|c| c.id.0 > through).collect();
    for claimed in &next {
        state.in_flight.insert(claimed.id.0, Origin::Log);
        state.claimed_through = state.claimed_through.max(claimed.id.0);
    }
    retries.extend(from_log);
    retries.extend(next);
    Ok(match &mut state.order {
        Some((sequencer, _)) => {
            // Keys freed since the reads began count too, within what was asked.
            let mut out = sequencer.ready(asked.saturating_sub(retries.len()).max(ready));
            out.extend(sequencer.admit(retries));
            out
        }
        None => retries,
    })
}

/// The released events still in the log, up to `room` of them, and those gone from it.
fn read_released(
    shared: &Shared,
    conn: &Connection,
    released: &[i64],
    room: usize,
) -> Result<(Vec<Claimed>, Vec<i64>), QueueError> {
    let fail = |what| move |source| QueueError::sqlite(&shared.path, what, source);
    let mut from_log = Vec::new();
    let mut gone = Vec::new();
    for id in released.iter().take(room) {
        let event: Option<(String, i64)> = conn
            .prepare_cached("SELECT body, received_at FROM events WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(fail("reading a released event"))?;
        match event {
            Some((body, received_at_ms)) => from_log.push(Claimed {
                id: EventId(*id),
                body,
                received_at_ms,
                attempt: 0,
            }),
            None => gone.push(*id),
        }
    }
    Ok((from_log, gone))
}

/// Most events an ordered connection keeps back (claimed while their key is held) before it
/// reads no further into the log: the connection then waits for keys to be freed.
const MAX_KEPT: usize = 100_000;

/// For an ordered connection that just started: its retries in the store hold their keys.
fn prime_order(
    shared: &Shared,
    conn: &Connection,
    connection: &str,
    state: &std::sync::Mutex<crate::state::ConnState>,
) -> Result<(), QueueError> {
    if !matches!(lock(state).order, Some((_, false))) {
        return Ok(());
    }
    let retries: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT event_id, body FROM retries WHERE connection = ?1 ORDER BY event_id",
        )
        .and_then(|mut s| {
            s.query_map([connection], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(|source| QueueError::sqlite(&shared.path, "reading the retries' keys", source))?;
    if let Some((sequencer, primed)) = &mut lock(state).order
        && !*primed
    {
        sequencer.hold_for_retries(retries.iter().map(|(id, body)| (*id, body.as_str())));
        *primed = true;
    }
    Ok(())
}

/// Counts from index ranges: events after the claimed-through id of the source, the
/// connection's retry rows and dead letters.
pub(crate) fn depth(
    shared: &Shared,
    conn: &Connection,
    connection: &str,
) -> Result<Depth, QueueError> {
    let fail = |what| move |source| QueueError::sqlite(&shared.path, what, source);
    let (source, through, released, in_flight, retries_in_flight) =
        if let Some(state) = shared.states.get(connection) {
            let state = lock(&state);
            (
                state.source.clone(),
                state.claimed_through,
                state.released.len() + state.kept(),
                state.in_flight.len() - state.kept(),
                state.retries_in_flight(),
            )
        } else {
            let known: Option<(String, i64, Vec<u8>)> = conn
                .prepare_cached("SELECT source, through, holes FROM connections WHERE name = ?1")
                .and_then(|mut s| {
                    s.query_row([connection], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()
                })
                .map_err(fail("reading a connection"))?;
            let Some((source, through, holes)) = known else {
                return Ok(Depth::default());
            };
            let holes = Position::decode_holes(through, &holes).map_or(0, |p| p.holes.len());
            (source, through, holes, 0, 0)
        };
    let count = |sql: &str, what, args: &[&dyn rusqlite::ToSql]| -> Result<u64, QueueError> {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.query_row(args, |row| row.get::<_, i64>(0)))
            .map(i64::cast_unsigned)
            .map_err(fail(what))
    };
    let pending = count(
        "SELECT count(*) FROM events WHERE source = ?1 AND id > ?2",
        "counting pending events",
        &[&source, &through],
    )?;
    let retrying = count(
        "SELECT count(*) FROM retries WHERE connection = ?1",
        "counting retries",
        &[&connection],
    )?;
    let dead = count(
        "SELECT count(*) FROM dead_letters WHERE connection = ?1",
        "counting dead letters",
        &[&connection],
    )?;
    Ok(Depth {
        pending: pending + released as u64,
        in_flight: in_flight as u64,
        retrying: retrying.saturating_sub(retries_in_flight as u64),
        dead,
    })
}

/// Retries due now, oldest due first, leaving out those already in flight.
fn due_retries(
    shared: &Shared,
    conn: &Connection,
    connection: &str,
    in_flight: &BTreeSet<i64>,
    max: usize,
) -> Result<Vec<Claimed>, QueueError> {
    let mut retries: Vec<Claimed> = conn
        .prepare_cached(
            "SELECT event_id, body, received_at, attempt FROM retries \
             WHERE connection = ?1 AND due_at <= ?2 ORDER BY due_at, event_id LIMIT ?3",
        )
        .and_then(|mut s| {
            s.query_map(
                params![
                    connection,
                    now_ms(),
                    limit(max.saturating_add(in_flight.len()))
                ],
                |row| {
                    Ok(Claimed {
                        id: EventId(row.get(0)?),
                        body: row.get(1)?,
                        received_at_ms: row.get(2)?,
                        attempt: u32::try_from(row.get::<_, i64>(3)?).unwrap_or(u32::MAX),
                    })
                },
            )?
            .collect()
        })
        .map_err(|source| QueueError::sqlite(&shared.path, "reading due retries", source))?;
    retries.retain(|claimed| !in_flight.contains(&claimed.id.0));
    retries.truncate(max);

    Ok(retries)
}
