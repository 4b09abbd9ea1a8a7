//! A TCP proxy between the desk and a server it depends on (PostgreSQL) that a test can cut or
//! stall, as when that server goes out of reach: cut, every connection through it closes and
//! new ones are dropped at once (the server refused them); stalled, no byte passes either way
//! and new connections are taken and never answered (a partition, where nothing says no);
//! restored, it passes connections again.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Passing,
    Cut,
    Stalled,
}

pub struct Proxy {
    pub addr: SocketAddr,
    state: watch::Sender<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let (state, states) = watch::channel(State::Passing);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut states = states.clone();
                let now = *states.borrow();
                match now {
                    State::Cut => continue,
                    // Held unanswered until the stall ends, then closed.
                    State::Stalled => {
                        tokio::spawn(async move {
                            let _ = states.wait_for(|s| *s != State::Stalled).await;
                            drop(client);
                        });
                        continue;
                    }
                    State::Passing => {}
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                        _ = states.wait_for(|s| *s != State::Passing) => {}
                    }
                    // Stalled: both ends stay open and hear nothing until the stall ends; a
                    // stream cut in the middle of a message is closed rather than resumed.
                    let _ = states.wait_for(|s| *s != State::Stalled).await;
                });
            }
        });
        Proxy { addr, state, task }
    }

    /// Closes every connection through the proxy and drops new ones.
    pub fn cut(&self) {
        self.state.send_replace(State::Cut);
    }

    /// Passes no byte on any connection, and takes new ones without ever answering.
    pub fn stall(&self) {
        self.state.send_replace(State::Stalled);
    }

    /// Passes connections again (those stalled are closed).
    pub fn restore(&self) {
        self.state.send_replace(State::Passing);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
