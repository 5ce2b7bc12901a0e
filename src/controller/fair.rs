//! Fair admission of reconciles: at most `capacity` run at once, and when more wait, the
//! next is taken from the namespaces in turn, with objects a person just changed ahead of
//! the rest. kube-runtime runs ready objects in the order they became ready, so a burst of
//! a thousand Rollouts in one team's namespace would hold up another team's single edit
//! until the whole burst went through.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use tokio::sync::oneshot;

/// How soon a waiting reconcile should run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// A person changed the object and waits for the operator to act (a new spec, a
    /// promote or abort request): ahead of everything else.
    Person,
    /// Everything else: timers, status changes, owned objects changing.
    Routine,
}

/// One lane of waiters: a queue per namespace, served in turn.
#[derive(Default)]
struct Lane {
    queues: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    turn: VecDeque<String>,
}

impl Lane {
    fn push(&mut self, namespace: &str, waiter: oneshot::Sender<()>) {
        let queue = self.queues.entry(namespace.to_string()).or_default();
        if queue.is_empty() {
            self.turn.push_back(namespace.to_string());
        }
        queue.push_back(waiter);
    }

    /// The first waiter of the namespace whose turn it is; the namespace goes to the back.
    fn pop(&mut self) -> Option<oneshot::Sender<()>> {
        while let Some(namespace) = self.turn.pop_front() {
            let Some(queue) = self.queues.get_mut(&namespace) else {
                continue;
            };
            let Some(waiter) = queue.pop_front() else {
                self.queues.remove(&namespace);
                continue;
            };
            if queue.is_empty() {
                self.queues.remove(&namespace);
            } else {
                self.turn.push_back(namespace);
            }
            return Some(waiter);
        }
        None
    }

    fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}

#[derive(Default)]
struct State {
    running: usize,
    person: Lane,
    routine: Lane,
}

/// Admits reconciles fairly; see the module documentation.
pub struct FairGate {
    capacity: usize,
    state: Mutex<State>,
}

/// A running reconcile's place; dropping it lets the next waiter in.
pub struct Permit {
    gate: Arc<FairGate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// A waiter's handle: if the waiting future is dropped after being let in, the place is
/// passed on instead of lost.
struct Waiting {
    gate: Arc<FairGate>,
    receiver: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut receiver) = self.receiver.take() {
            receiver.close();
            if receiver.try_recv().is_ok() {
                self.gate.release();
            }
        }
    }
}

impl FairGate {
    /// A gate letting `capacity` (at least one) reconciles run at once.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a place for an object of `namespace`.
    pub async fn enter(self: &Arc<Self>, namespace: &str, urgency: Urgency) -> Permit {
        let receiver = {
            let mut state = self.lock();
            if state.running < self.capacity {
                state.running += 1;
                return Permit { gate: self.clone() };
            }
            let (sender, receiver) = oneshot::channel();
            match urgency {
                Urgency::Person => state.person.push(namespace, sender),
                Urgency::Routine => state.routine.push(namespace, sender),
            }
            receiver
        };
        let mut waiting = Waiting {
            gate: self.clone(),
            receiver: Some(receiver),
        };
        if let Some(receiver) = waiting.receiver.as_mut() {
            // A sender is only dropped unsent when this receiver was closed, which happens
            // in `Waiting::drop` alone: the result is always a place handed over.
            let _ = receiver.await;
        }
        waiting.receiver = None;
        Permit { gate: self.clone() }
    }

    /// Hands the place of a finished reconcile to the next waiter, or frees it.
    fn release(&self) {
        let mut state = self.lock();
        loop {
            let next = state.person.pop().or_else(|| state.routine.pop());
            match next {
                // A waiter that gave up has closed its receiver: try the next one.
                Some(waiter) => {
                    if waiter.send(()).is_ok() {
                        return;
                    }
                }
                None => {
                    state.running = state.running.saturating_sub(1);
                    return;
                }
            }
        }
    }

    /// Reconciles waiting for a place.
    pub fn waiting(&self) -> usize {
        let state = self.lock();
        state.person.len() + state.routine.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Starts a waiter that records its name when let in and holds its place until told.
    fn waiter(
        gate: &Arc<FairGate>,
        namespace: &'static str,
        urgency: Urgency,
        name: &'static str,
        order: &Arc<Mutex<Vec<&'static str>>>,
    ) -> tokio::task::JoinHandle<()> {
        let gate = gate.clone();
        let order = order.clone();
        tokio::spawn(async move {
            let _permit = gate.enter(namespace, urgency).await;
            order.lock().unwrap().push(name);
            tokio::task::yield_now().await;
        })
    }

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn namespaces_take_turns_and_a_persons_change_goes_first() {
        let gate = FairGate::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = gate.enter("busy", Urgency::Routine).await;
        let mut tasks = Vec::new();
        for name in ["busy-1", "busy-2", "busy-3", "busy-4"] {
            tasks.push(waiter(&gate, "busy", Urgency::Routine, name, &order));
            settle().await;
        }
        tasks.push(waiter(&gate, "quiet", Urgency::Routine, "quiet-1", &order));
        settle().await;
        tasks.push(waiter(&gate, "busy", Urgency::Person, "edited", &order));
        settle().await;
        assert_eq!(gate.waiting(), 6);
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["edited", "busy-1", "quiet-1", "busy-2", "busy-3", "busy-4"]
        );
        assert_eq!(gate.waiting(), 0);
    }

    #[tokio::test]
    async fn urgent_changes_take_turns_by_namespace_too() {
        let gate = FairGate::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = gate.enter("a", Urgency::Routine).await;
        let mut tasks = Vec::new();
        for name in ["a-1", "a-2", "a-3"] {
            tasks.push(waiter(&gate, "a", Urgency::Person, name, &order));
            settle().await;
        }
        tasks.push(waiter(&gate, "b", Urgency::Person, "b-1", &order));
        settle().await;
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["a-1", "b-1", "a-2", "a-3"]);
    }

    #[tokio::test]
    async fn at_most_capacity_run_and_a_waiter_that_gives_up_loses_no_place() {
        let gate = FairGate::new(2);
        let first = gate.enter("a", Urgency::Routine).await;
        let second = gate.enter("a", Urgency::Routine).await;
        // A third waits; it is abandoned (its reconcile cancelled) while waiting.
        let abandoned =
            tokio::time::timeout(Duration::from_millis(20), gate.enter("a", Urgency::Routine))
                .await;
        assert!(abandoned.is_err(), "a third ran beside two");
        drop(first);
        drop(second);
        // Both places are free again: two enter at once without waiting.
        let a = tokio::time::timeout(Duration::from_secs(1), gate.enter("b", Urgency::Routine))
            .await
            .expect("a place is free");
        let b = tokio::time::timeout(Duration::from_secs(1), gate.enter("b", Urgency::Routine))
            .await
            .expect("the second place is free");
        drop((a, b));
        assert_eq!(gate.waiting(), 0);
    }

    #[tokio::test]
    async fn a_place_handed_to_a_waiter_that_just_left_passes_on() {
        let gate = FairGate::new(1);
        let held = gate.enter("a", Urgency::Routine).await;
        let gate2 = gate.clone();
        let leaving = tokio::spawn(async move { gate2.enter("a", Urgency::Routine).await });
        settle().await;
        // Released and the waiter cancelled at once: whichever wins, the place comes back.
        drop(held);
        leaving.abort();
        let _ = leaving.await;
        let again = tokio::time::timeout(Duration::from_secs(1), gate.enter("c", Urgency::Routine))
            .await
            .expect("the place was not lost");
        drop(again);
    }
}
