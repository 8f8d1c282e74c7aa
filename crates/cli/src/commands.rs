//! Customer commands: each is one or two API calls through [`bank_client::Client`], with the
//! session token kept in the [`SessionStore`] for the target.

use anyhow::{Context, Result, bail};
use bank_client::{Client, Destination, NewAccount, NewTransfer, Status};
use std::process::ExitCode;

use crate::args::{AccountCommand, DepositArgs, LoginArgs, OpenAccountArgs, PixCommand, PixSendArgs, StatementArgs};
use crate::args::{TransferCommand, WithdrawArgs};
use crate::render;
use crate::session::{SessionStore, StoredSession};

/// What every customer command needs: where to talk to and where sessions are kept.
#[derive(Debug, Clone)]
pub struct Customer {
    pub target: String,
    pub client: Client,
    pub store: SessionStore,
}

impl Customer {
    pub fn new(target: &str, store: SessionStore) -> Result<Self> {
        let client = Client::new(target).with_context(|| format!("cannot use --target {target:?}"))?;
        Ok(Customer { target: target.to_owned(), client, store })
    }

    /// A client acting for the session kept for this target.
    fn signed_in(&self) -> Result<Client> {
        match self.store.get(&self.target)? {
            Some(session) => Ok(self.client.with_token(session.token)),
            None => bail!("not signed in to {}; run `bank login --email .. --password ..` first", self.target),
        }
    }
}

pub async fn account(ctx: &Customer, command: AccountCommand) -> Result<ExitCode> {
    match command {
        AccountCommand::Open(args) => open_account(ctx, args).await,
    }
}

async fn open_account(ctx: &Customer, args: OpenAccountArgs) -> Result<ExitCode> {
    let mut holders = Vec::with_capacity(args.holders.len() + 1);
    if let (Some(name), Some(document)) = (args.name, args.document) {
        holders.push(bank_client::Holder { name, document });
    }
    holders.extend(args.holders);
    if holders.is_empty() {
        bail!("an account needs a holder: give --name and --document (or --holder NAME:DOCUMENT)");
    }
    let request =
        NewAccount { kind: args.kind.into(), holders, email: args.email, phone: args.phone, password: args.password };
    let account = ctx.client.open_account(&request).await.context("account not opened")?;
    println!("Opened.");
    print!("{}", render::account(&account));
    Ok(ExitCode::SUCCESS)
}

pub async fn login(ctx: &Customer, args: LoginArgs) -> Result<ExitCode> {
    let session = ctx.client.login(&args.email, &args.password).await.context("not signed in")?;
    let account = &session.account;
    ctx.store.put(
        &ctx.target,
        StoredSession {
            token: session.token.clone(),
            expires_at: session.expires_at.clone(),
            email: account.email.clone(),
            bank_id: account.bank_id,
            bank_name: account.bank_name.clone(),
            number: account.number.clone(),
        },
    )?;
    println!(
        "Signed in to account {} at {} until {} (session kept in {}).",
        account.number,
        account.bank_name,
        render::short_time(&session.expires_at),
        ctx.store.path().display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn logout(ctx: &Customer) -> Result<ExitCode> {
    let Some(session) = ctx.store.get(&ctx.target)? else {
        println!("Not signed in to {}.", ctx.target);
        return Ok(ExitCode::SUCCESS);
    };
    // The local token is forgotten whatever the bank says: an expired or revoked session (401)
    // is as ended as a deleted one. Other failures are reported after forgetting it.
    let result = ctx.client.with_token(session.token).logout().await;
    ctx.store.remove(&ctx.target)?;
    match result {
        Ok(()) => println!("Signed out of {}.", ctx.target),
        Err(e) if e.status() == Some(401) => println!("Signed out of {} (the session had already ended).", ctx.target),
        Err(e) => return Err(e).context("the session was forgotten here, but the bank did not confirm its end"),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn me(ctx: &Customer) -> Result<ExitCode> {
    let account = ctx.signed_in()?.me().await?;
    print!("{}", render::account(&account));
    Ok(ExitCode::SUCCESS)
}

pub async fn deposit(ctx: &Customer, args: DepositArgs) -> Result<ExitCode> {
    let client = ctx.signed_in()?;
    let entry = client.deposit(args.amount.cents(), args.method.into()).await.context("nothing deposited")?;
    println!("{}", render::entry_line(&entry));
    print_available(&client).await;
    Ok(ExitCode::SUCCESS)
}

pub async fn withdraw(ctx: &Customer, args: WithdrawArgs) -> Result<ExitCode> {
    let client = ctx.signed_in()?;
    let entry = client.withdraw(args.amount.cents()).await.context("nothing withdrawn")?;
    println!("{}", render::entry_line(&entry));
    print_available(&client).await;
    Ok(ExitCode::SUCCESS)
}

/// Shows the balance after a movement; failing to read it does not undo the movement, so it
/// is only mentioned.
async fn print_available(client: &Client) {
    match client.me().await {
        Ok(account) => println!("Available now: {}", bank_core::money::format_brl(account.balance.available_cents)),
        Err(e) => eprintln!("(could not read the new balance: {e})"),
    }
}

pub async fn pix(ctx: &Customer, command: PixCommand) -> Result<ExitCode> {
    let client = ctx.signed_in()?;
    match command {
        PixCommand::Send(args) => pix_send(&client, args).await,
        PixCommand::Lookup { key } => {
            let info = client.lookup_pix_key(&key).await?;
            println!("{}", render::key_info(&info));
            Ok(ExitCode::SUCCESS)
        }
        PixCommand::Register { key_type } => {
            let key = client.create_pix_key(key_type.into()).await.context("key not registered")?;
            println!("Registered Pix key {} ({}).", key.key, key.key_type);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Looks the key up first, so the customer sees whom the money goes to, then sends to the key
/// (not to the looked-up account: the bank resolves the key again when it executes).
async fn pix_send(client: &Client, args: PixSendArgs) -> Result<ExitCode> {
    let info = client.lookup_pix_key(&args.key).await.context("nothing sent")?;
    println!("Sending {} to {}", args.amount, render::key_info(&info));
    let request = NewTransfer::single(Destination::Key { key: args.key }, args.amount.cents(), args.description);
    let transfer = client.transfer(&request).await.context("nothing sent")?;
    print!("{}", render::transfer(&transfer));
    Ok(transfer_exit_code(transfer.status))
}

/// A failed transfer executed (and is in the statement) but moved nothing: for a script that is
/// a failure. A pending one may still complete: success, with the hint to follow it.
fn transfer_exit_code(status: Status) -> ExitCode {
    match status {
        Status::Completed | Status::Pending => ExitCode::SUCCESS,
        Status::Failed => ExitCode::FAILURE,
    }
}

pub async fn transfer(ctx: &Customer, command: TransferCommand) -> Result<ExitCode> {
    match command {
        TransferCommand::Send(args) => {
            let legs = args.legs().map_err(|e| anyhow::anyhow!("{e}; nothing sent"))?;
            let request = NewTransfer { legs, description: args.description };
            let transfer = ctx.signed_in()?.transfer(&request).await.context("nothing sent")?;
            print!("{}", render::transfer(&transfer));
            Ok(transfer_exit_code(transfer.status))
        }
        TransferCommand::Show { id } => {
            let transfer = ctx.signed_in()?.get_transfer(id).await?;
            print!("{}", render::transfer(&transfer));
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn statement(ctx: &Customer, args: StatementArgs) -> Result<ExitCode> {
    let page = ctx.signed_in()?.statement(Some(args.limit), args.before.as_deref()).await?;
    print!("{}", render::statement(&page));
    Ok(ExitCode::SUCCESS)
}

pub async fn accounts(ctx: &Customer) -> Result<ExitCode> {
    let list = ctx.signed_in()?.consortium_accounts().await?;
    print!("{}", render::consortium_accounts(&list));
    Ok(ExitCode::SUCCESS)
}

/// `bank openapi`: the document a node serves at `/api/v1/openapi.json`, byte for byte.
pub fn openapi() -> Result<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bank_node::api::openapi::json().as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
