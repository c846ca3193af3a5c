//! How chainr reaches a cluster: kubeconfig (the current context or a named one), or the
//! in-cluster service account when running in a pod; and which namespace it uses.

/// A client and the namespace its Jobs go to.
pub struct Connection {
    pub client: kube::Client,
    pub namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No kubeconfig and no in-cluster service account, or an unusable one.
    #[error("{0}")]
    Config(String),
    /// The client could not be built from the configuration.
    #[error("{0}")]
    Client(String),
}

/// Connects with the kubeconfig `context` (default: the current one, or the in-cluster service
/// account); `namespace` overrides the context's (default: the context's, or `default`).
pub async fn connect(
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<Connection, ConnectError> {
    let mut config = match context {
        Some(context) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|e| ConnectError::Config(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| ConnectError::Config(e.to_string()))?,
    };
    if let Some(ns) = namespace {
        config.default_namespace = ns.to_string();
    }
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| ConnectError::Client(e.to_string()))?;
    Ok(Connection { client, namespace })
}
